"""Reading model files through nnabla's loader: nntxt, NNP zip, results folder."""
import zipfile

import pytest

from helpers import layer_after_tanh, variant
from nnc_plugin.errors import UserError
from nnc_plugin.model.project import load_project


def test_nntxt_gives_training_configuration(mnist):
    project = load_project(mnist["model"])
    assert project.train_network == "Main"
    assert project.loss_variables == ["CategoricalCrossEntropy"]
    assert project.data_variables == {"Input": "x", "CategoricalCrossEntropy_T": "y"}
    assert project.solver_name == "Sgd" and abs(project.solver_hyperparameters["lr"] - 0.1) < 1e-7
    assert project.max_epoch == 10 and project.batch_size == 64
    assert project.input_shapes == {"x": (1, 28, 28), "y": (1,)}
    assert project.train_dataset.uri.endswith("mnist/data/train.csv")
    assert project.val_dataset.uri.endswith("mnist/data/val.csv")
    assert set(project.trainable_parameters) == {f"{layer}/{kind}/{p}" for layer, kind in
                                                 [("Convolution", "conv"), ("Convolution_2", "conv"), ("Affine", "affine")]
                                                 for p in "Wb"}
    assert not project.has_trained_parameters and not project.eval_network_derived


def _nnp(tmp_path, nntxt, with_parameters=False):
    path = tmp_path / "results.nnp"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("nnp_version.txt", "0.1\n")
        archive.write(nntxt, "network.nntxt")
        if with_parameters:
            from nnc_plugin.model.network import Model
            model = Model(load_project(nntxt), seed=0)
            model.save_parameters(str(tmp_path / "parameter.h5"))
            archive.write(tmp_path / "parameter.h5", "parameter.h5")
    return path


def test_nnp_zip_and_results_folder_read_like_the_nntxt(tmp_path, digits):
    nnp = _nnp(tmp_path, digits["model"], with_parameters=True)
    from_nnp = load_project(str(nnp))
    from_folder = load_project(str(tmp_path))  # NNC's results folder holding results.nnp
    assert from_nnp.path == from_folder.path == str(nnp)
    assert from_nnp.trainable_parameters == load_project(digits["model"]).trainable_parameters
    assert from_nnp.has_trained_parameters


def test_scoring_network_is_derived_when_training_network_has_dropout(tmp_path, digits):
    model = variant(digits["model"], tmp_path / "dropout.nntxt", layer_after_tanh("Dropout", "dropout_param { p: 0.5 }"))
    project = load_project(str(model))
    assert project.eval_network_derived and project.eval_network == "Main__scoring"
    scoring = next(n for n in project.proto.network if n.name == project.eval_network)
    assert [f.type for f in scoring.function if f.name == "Dropout"] == ["Identity"]


def test_missing_model_file_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_project(str(tmp_path / "nothing.nnp"))
