"""Bad inputs through `nnc-cleanse score`: one sentence, a non-zero exit, no traceback, nothing written.

Every test runs the installed command on a small copy of the digits project in its own folder,
then checks the message, the exit status, and that no file in that folder was added, removed or
changed (the inputs included). They rank by SGD-influence, the ranking that needs the most of
the network (second derivatives) and of the data (a validation set).
"""
import hashlib
import os
import re
import shutil
import sys
import tempfile
import zipfile

import pytest

from helpers import binary_logistic_project, layer_after_tanh, read_csv, subset_csv, variant
from nnc_plugin.errors import UserError
from nnc_plugin.model.project import load_project


SGD_INFLUENCE = ("-r", "sgd-influence")


def snapshot(folder):
    """{relative path: sha256} of every file under `folder`, and every folder (value None)."""
    state = {}
    for root, folders, files in os.walk(folder):
        for name in folders:
            state[os.path.relpath(os.path.join(root, name), folder) + "/"] = None
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                state[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return state


@pytest.fixture
def project(tmp_path, digits):
    """A small digits project in tmp_path/project: model.nntxt, train.csv (200 rows), val.csv (100 rows)."""
    folder = tmp_path / "project"
    folder.mkdir()
    train = subset_csv(digits["train"], folder / "train.csv", 200)
    val = subset_csv(digits["val"], folder / "val.csv", 100)
    model = variant(digits["model"], folder / "model.nntxt",
                    {'uri: "data/train.csv"': f'uri: "{train}"', 'uri: "data/val.csv"': f'uri: "{val}"'})
    return {"folder": folder, "model": str(model), "train": str(train), "val": str(val),
            "output": str(tmp_path / "out" / "influence.csv")}


def refused(cli, tmp_path, *args, model=None, train=None, val=None, output=None, project=None, log=None):
    """Run `score` expecting a refusal; check the status, the one-line sentence and that nothing changed.

    Returns the message (without the "nnc-cleanse: error: " prefix); `log`, a list, receives the whole stderr.
    """
    arguments = ["score", "-m", model or project["model"], "-t", train or project["train"],
                 "-v", val or project["val"], "-o", output or project["output"], "--epochs", "1", *SGD_INFLUENCE, *args]
    before = snapshot(tmp_path)
    result = cli(*arguments, check=False, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("nnc-cleanse: error: ")]
    assert len(errors) == 1, result.stderr
    message = errors[0][len("nnc-cleanse: error: "):]
    if log is not None:
        log.append(result.stderr)
    assert message.endswith(".") and message[0].isupper(), message
    assert snapshot(tmp_path) == before, "a refused run must not write, remove or change any file"
    return message


# The model file ---------------------------------------------------------------------------------

def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return str(path)


def test_zip_that_is_not_an_nnp(tmp_path, project, cli):
    nnp = _zip(project["folder"] / "results.nnp", {"readme.txt": "hello", "data.csv": "1,2\n"})
    message = refused(cli, tmp_path, model=nnp, project=project)
    assert nnp in message and "not an NNP file" in message and "results.nnp" in message


def test_nnp_that_is_not_a_zip(tmp_path, project, cli):
    nnp = project["folder"] / "results.nnp"
    nnp.write_bytes(b"PK\x03\x04 truncated, not really a zip")
    message = refused(cli, tmp_path, model=str(nnp), project=project)
    assert str(nnp) in message and "not a zip archive" in message


def test_nntxt_that_does_not_parse(tmp_path, project, cli):
    text = open(project["model"]).read()
    broken = project["folder"] / "broken.nntxt"
    broken.write_text(text.replace('name: "Affine_2"\n    type: "Affine"', 'name: "Affine_2"\n    type: Affine {', 1))
    message = refused(cli, tmp_path, model=str(broken), project=project)
    assert str(broken) in message and "could not be parsed as nntxt" in message and "export it again" in message


def test_nntxt_inside_an_nnp_that_does_not_parse(tmp_path, project, cli):
    nnp = _zip(project["folder"] / "results.nnp", {"network.nntxt": "network { name: 'Main' \n garbage"})
    message = refused(cli, tmp_path, model=nnp, project=project)
    assert "network.nntxt inside the model file" in message and nnp in message


def _without(model, target, pattern):
    text = open(model).read()
    changed, count = re.subn(pattern, "", text, flags=re.S)
    assert count, pattern
    with open(target, "w") as f:
        f.write(changed)
    return str(target)


def test_nnp_with_no_training_network(tmp_path, project, cli):
    nntxt = variant(project["model"], project["folder"] / "other.nntxt",
                    {'network_name: "Main"\n  dataset_name: "Training"': 'network_name: "Gone"\n  dataset_name: "Training"'})
    nnp = _zip(project["folder"] / "results.nnp", {"network.nntxt": open(nntxt).read()})
    message = refused(cli, tmp_path, model=nnp, project=project)
    assert "no training network" in message and "'Gone'" in message and nnp in message


def test_nnp_with_no_loss(tmp_path, project, cli):
    model = _without(project["model"], project["folder"] / "no_loss.nntxt", r"  loss_variable \{.*?\n  \}\n")
    message = refused(cli, tmp_path, model=model, project=project)
    assert "no loss variable" in message and model in message and "loss layer" in message


def test_nnp_with_no_optimizer(tmp_path, project, cli):
    model = _without(project["model"], project["folder"] / "no_optimizer.nntxt", r"\noptimizer \{.*?\n\}\n")
    nnp = _zip(project["folder"] / "results.nnp", {"network.nntxt": open(model).read()})
    message = refused(cli, tmp_path, model=nnp, project=project)
    assert "has no optimizer" in message and nnp in message


def test_nnp_with_no_dataset(tmp_path, project, cli):
    model = _without(project["model"], project["folder"] / "no_dataset.nntxt", r"\ndataset \{.*?\n\}\n")
    message = refused(cli, tmp_path, model=model, project=project)
    assert "has no dataset 'Training'" in message and model in message


def test_dataset_named_in_the_model_but_absent_is_asked_for(tmp_path, project, cli):
    model = variant(project["model"], project["folder"] / "elsewhere.nntxt",
                    {f'uri: "{project["train"]}"': 'uri: "/nowhere/train.csv"'})
    arguments = ["score", "-m", model, "-o", project["output"], "--epochs", "1"]
    before = snapshot(tmp_path)
    result = cli(*arguments, check=False, cwd=tmp_path)
    assert result.returncode == 2 and "/nowhere/train.csv" in result.stderr and "--input-train" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("solver, parameters", [("Adadelta", "adadelta_param { lr: 1.0 decay: 0.95 eps: 1e-6 }"),
                                                ("Lamb", "lamb_param { eta: 0.001 }")])
def test_unsupported_solver_is_named(tmp_path, project, cli, solver, parameters):
    model = variant(project["model"], project["folder"] / f"{solver}.nntxt",
                    {'type: "Sgd"': f'type: "{solver}"', "sgd_param {\n      lr: 0.1\n    }": parameters})
    message = refused(cli, tmp_path, model=model, project=project)
    assert f"The solver {solver} in {model} is not supported" in message and "Sgd" in message


def _with_layer(project, layer_type, parameters=""):
    """The digits model with one more layer (of the same shape) after the hidden Tanh."""
    return variant(project["model"], project["folder"] / f"{layer_type}.nntxt",
                   layer_after_tanh(layer_type, parameters, name=f"{layer_type}_1"))


@pytest.mark.parametrize("layer_type, parameters", [("Flip", "flip_param { axes: 1 }"),
                                                    ("Sort", "sort_param { axis: 1 }")])
def test_layer_without_second_derivative_is_named_before_training(tmp_path, project, cli, layer_type, parameters):
    model = _with_layer(project, layer_type, parameters)
    log = []
    message = refused(cli, tmp_path, model=str(model), project=project, log=log)
    assert f"The {layer_type} layer '{layer_type}_1' in {model} is not supported" in message
    assert "second derivative" in message
    assert "training" not in log[0].replace(message, "").lower(), "refused before any training"


def test_layer_with_second_derivative_is_accepted(tmp_path, project, cli):
    model = _with_layer(project, "Abs")
    cli("score", "-m", model, "-t", project["train"], "-v", project["val"], "-o", project["output"], "--epochs", "1",
        *SGD_INFLUENCE)
    assert os.path.exists(project["output"])


def test_layer_without_second_derivative_is_fine_for_rankings_that_need_none(tmp_path, project, cli):
    model = _with_layer(project, "Flip", "flip_param { axes: 1 }")
    cli("score", "-m", model, "-t", project["train"], "-v", project["val"], "-o", project["output"], "--epochs", "1",
        "-r", "loss-history")
    assert os.path.exists(project["output"])


def test_model_without_max_epoch_asks_for_epochs_and_runs_with_them(tmp_path, project, cli):
    model = _without(project["model"], project["folder"] / "no_config.nntxt", r"training_config \{.*?\n\}\n")
    before = snapshot(tmp_path)
    result = cli("score", "-m", model, "-t", project["train"], "-v", project["val"], "-o", project["output"],
                 check=False, cwd=tmp_path)
    assert result.returncode == 2 and "Max Epoch" in result.stderr and "--epochs" in result.stderr
    assert snapshot(tmp_path) == before
    cli("score", "-m", model, "-t", project["train"], "-v", project["val"], "-o", project["output"], "--epochs", "1")



def test_trial_count_that_is_not_a_whole_number_or_auto(tmp_path, project, cli):
    assert refused(cli, tmp_path, "-nt", "0", project=project) == \
        "The number of trials (--n-trials) must be 'auto' or a whole number, 1 or more, not 0."
    result = cli("score", "-m", project["model"], "-nt", "three", check=False, cwd=tmp_path)
    assert result.returncode == 2 and "takes a whole number of trials or 'auto', not 'three'" in result.stderr

# The dataset CSVs -------------------------------------------------------------------------------

def _write(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


def _write_rows(path, header, rows):
    """A CSV: the `header` line, then `rows` (lists of cells) joined with plain commas."""
    return _write(path, header + "\n" + "".join(",".join(cells) + "\n" for cells in rows))


def _rows(project, count=5):
    return read_csv(project["train"])[1:count + 1]


def test_csv_with_a_header_cell_without_name(tmp_path, project, cli):
    rows = _rows(project)
    train = _write_rows(project["folder"] / "bad.csv", "x:image,:label", rows)
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"Column 2 of the header of {train}" in message and "x:image" in message


def test_csv_without_a_header(tmp_path, project, cli):
    rows = _rows(project)
    train = _write(project["folder"] / "bad.csv", "".join(f"{b},{a}\n" for a, b in rows))
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"The first line of {train} looks like data" in message and "add a header" in message


def test_csv_with_a_missing_column(tmp_path, project, cli):
    rows = _rows(project)
    val = _write_rows(project["folder"] / "bad.csv", "x:image,z:label", rows)
    message = refused(cli, tmp_path, val=val, project=project)
    assert f"The dataset {val} has no column 'y'" in message and "x:image, z:label" in message


@pytest.mark.parametrize("text", ["x:image,y:label\n", "", "\n\n"])
def test_csv_with_an_empty_body(tmp_path, project, cli, text):
    train = _write(project["folder"] / "empty.csv", text)
    message = refused(cli, tmp_path, train=train, project=project)
    assert train in message and ("no rows" in message or "is empty" in message)


def test_csv_row_whose_file_is_missing(tmp_path, project, cli):
    rows = _rows(project)
    rows[2][0] = "images/nothere.png"
    train = _write_rows(project["folder"] / "bad.csv", "x:image,y:label", rows)
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"Row 4 of {train}, column 'x:image': the file 'images/nothere.png' does not exist" in message


def test_csv_row_whose_file_is_unreadable(tmp_path, project, cli):
    (project["folder"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    rows = _rows(project)
    rows[1][0] = "broken.png"
    val = _write_rows(project["folder"] / "bad.csv", "x:image,y:label", rows)
    message = refused(cli, tmp_path, val=val, project=project)
    assert f"Row 3 of {val}, column 'x:image': the file 'broken.png' cannot be read" in message
    assert "replace it" in message


def test_csv_row_with_too_few_cells(tmp_path, project, cli):
    rows = _rows(project)
    train = _write_rows(project["folder"] / "bad.csv", "x:image,y:label", rows + [[rows[0][0]]])
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"Row 7 of {train} has 1 cells but the header has 2" in message


class _MakesAFolder:
    """Unpickling this calls os.mkdir: a stand-in for code hidden in an object .npy file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_npy_file_holding_objects_is_refused_without_unpickling(tmp_path, project, cli):
    """nnabla opens .npy files with pickling allowed; such a file is refused before nnabla opens it."""
    import numpy as np
    marker = tmp_path / "code_ran"
    np.save(project["folder"] / "evil.npy", np.array([_MakesAFolder(str(marker))], dtype=object), allow_pickle=True)
    np.save(project["folder"] / "good.npy", np.zeros((1, 8, 8), dtype=np.float32))
    train = _write(project["folder"] / "arrays.csv", "x,y\ngood.npy,1\nevil.npy,2\n")
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"Row 3 of {train}, column 'x': the file 'evil.npy' holds object values, not numbers" in message
    assert not marker.exists()


@pytest.mark.parametrize("label", ["10", "-1", "2.5"])
def test_label_out_of_the_networks_range(tmp_path, project, cli, label):
    rows = _rows(project)
    rows[3][1] = label
    train = _write_rows(project["folder"] / "bad.csv", "x:image,y:label", rows)
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"Row 5 of {train}: the label '{label}' in column 'y' is not a class index from 0 to 9" in message


def test_label_of_a_binary_loss_outside_0_to_1(tmp_path, project, cli):
    """Sigmoid + BinaryCrossEntropy: a label 2 would train silently (its loss turns negative) and rank last."""
    zeros_and_ones = [r for r in read_csv(project["train"])[1:] if r[1] in ("0", "1")]
    zeros_and_ones[4][1] = "2"
    train = _write_rows(project["folder"] / "binary.csv", "x:image,y:label", zeros_and_ones)
    model = binary_logistic_project(str(project["folder"]))
    message = refused(cli, tmp_path, model=model, train=train, project=project)
    assert f"Row 6 of {train}: the label '2' in column 'y' is not a number from 0 to 1" in message


def test_extra_text_column_names_the_way_out(tmp_path, project, cli):
    rows = _rows(project)
    train = _write_rows(project["folder"] / "bad.csv", "x:image,y:label,comment", [row + ["note"] for row in rows])
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"Row 2 of {train}, column 'comment': 'note' is neither a number nor a path" in message
    assert "rename it '#comment'" in message


@pytest.mark.parametrize("value", ["nan", "inf", "1e400"])
def test_label_that_is_not_a_finite_number(tmp_path, project, cli, value):
    rows = _rows(project)
    rows[0][1] = value
    train = _write_rows(project["folder"] / "bad.csv", "x:image,y:label", rows)
    message = refused(cli, tmp_path, train=train, project=project)
    assert f"Row 2 of {train}, column 'y:label': the value '{value}' is not a finite number" in message


def test_csv_that_is_not_utf8(tmp_path, project, cli):
    train = project["folder"] / "latin1.csv"
    train.write_bytes("x:image,y:label\nbild_\xe9.png,1\n".encode("latin-1"))
    message = refused(cli, tmp_path, train=str(train), project=project)
    assert f"{train} is not UTF-8 text" in message


def test_training_samples_of_another_shape(tmp_path, project, mnist, cli):
    train = subset_csv(mnist["train"], project["folder"] / "mnist.csv", 20)
    message = refused(cli, tmp_path, train=str(train), project=project)
    assert f"The column 'x' of {train} holds samples of shape (1, 28, 28)" in message
    assert "the network expects (1, 8, 8)" in message


def test_validation_samples_of_another_shape(tmp_path, project, mnist, cli):
    val = subset_csv(mnist["val"], project["folder"] / "mnist.csv", 20)
    message = refused(cli, tmp_path, val=str(val), project=project)
    assert f"The column 'x' of {val} holds samples of shape (1, 28, 28)" in message


# Training that diverges -------------------------------------------------------------------------

def test_loss_that_becomes_nan_names_the_epoch(tmp_path, project, cli):
    model = variant(project["model"], project["folder"] / "huge_lr.nntxt",
                    {"lr: 0.1": "lr: 1e38", 'type: "Tanh"': 'type: "ReLU"'})
    message = refused(cli, tmp_path, model=model, project=project)
    assert re.search(r"The training loss became (NaN|infinite) in epoch 1 \(step \d+\)", message), message
    assert "lower the learning rate" in message


def test_scores_that_come_out_nan_are_refused(tmp_path, project, cli):
    """A saturating loss can stay finite while training diverges; the scores then must not be written."""
    model = variant(project["model"], project["folder"] / "huge_lr.nntxt", {"lr: 0.1": "lr: 1e30"})
    arguments = ["score", "-m", model, "-t", project["train"], "-v", project["val"], "-o", project["output"],
                 "--epochs", "1", *SGD_INFLUENCE]
    before = snapshot(project["folder"])
    result = cli(*arguments, check=False, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not finite numbers" in result.stderr and "lower the learning rate" in result.stderr
    assert snapshot(project["folder"]) == before
    written = sorted(os.listdir(os.path.dirname(project["output"])))
    assert written == ["influence_cache"], "only the finished training's cache is kept; no output is written"


# The output -------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["train", "val", "model"])
def test_output_equal_to_an_input_is_refused(tmp_path, project, cli, which):
    message = refused(cli, tmp_path, output=project[which], project=project)
    assert f"The output {project[which]} is the input file" in message and "choose another output name" in message


def test_output_equal_to_an_input_through_another_spelling(tmp_path, project, cli):
    link = tmp_path / "link.csv"
    os.symlink(project["train"], link)
    message = refused(cli, tmp_path, output=str(tmp_path / "project" / ".." / "project" / "train.csv"), project=project)
    assert "is the input file" in message
    message = refused(cli, tmp_path, output=str(link), project=project)
    assert "is the input file" in message


def test_summary_equal_to_an_input_is_refused(tmp_path, project, cli):
    val = project["folder"] / "scores.csv.summary.json"
    shutil.copy(project["val"], val)
    output = str(project["folder"] / "scores.csv")
    message = refused(cli, tmp_path, val=str(val), output=output, project=project)
    assert f"The output {output}.summary.json is the input file" in message


def test_output_under_a_file_is_refused(tmp_path, project, cli):
    output = os.path.join(project["train"], "influence.csv")
    message = refused(cli, tmp_path, output=output, project=project)
    assert "cannot be written" in message and f"{project['train']} is a file" in message


def test_output_that_is_a_folder_is_refused(tmp_path, project, cli):
    (tmp_path / "folder.csv").mkdir()
    message = refused(cli, tmp_path, output=str(tmp_path / "folder.csv"), project=project)
    assert "is a folder" in message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write to read-only folders")
def test_output_in_a_read_only_folder_is_refused(tmp_path, project, cli):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        message = refused(cli, tmp_path, output=str(folder / "influence.csv"), project=project)
    finally:
        folder.chmod(0o755)
    assert "cannot be written (no permission" in message


def _unwritable_system_folder():
    for folder in ("/sys", "/proc"):
        if os.path.isdir(folder):
            try:
                with tempfile.TemporaryFile(dir=folder):
                    continue
            except OSError:
                return folder
    return None


@pytest.mark.skipif(_unwritable_system_folder() is None, reason="no folder here refuses writes")
def test_output_in_a_folder_that_refuses_writes_is_refused(tmp_path, project, cli):
    """Even root cannot create files in /sys: the check tries instead of reading permission bits."""
    output = os.path.join(_unwritable_system_folder(), "influence.csv")
    message = refused(cli, tmp_path, output=output, project=project)
    assert f"The output {output} cannot be written" in message


def test_cache_folder_that_is_a_file_is_refused(tmp_path, project, cli):
    message = refused(cli, tmp_path, "--cache-dir", project["train"], project=project)
    assert f"The cache folder {project['train']} cannot be made" in message


def test_cache_folder_holding_other_files_is_not_emptied(tmp_path, project, cli):
    """A trial folder is replaced when its cache is stale; one holding the user's files is refused instead."""
    mine = tmp_path / "mine" / "trial_0"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    message = refused(cli, tmp_path, "--cache-dir", str(tmp_path / "mine"), project=project)
    assert "holds 'notes.txt', which nnc-cleanse did not write" in message
    assert (mine / "notes.txt").read_text() == "keep me"


def test_unexpected_errors_are_one_line_too(capsys, monkeypatch):
    """An error no check foresaw (a bug) still ends in one sentence and exit status 1, not a traceback."""
    from nnc_plugin.cli import run_safely

    def broken():
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.delenv("NNC_CLEANSE_TRACEBACK", raising=False)
    assert run_safely(broken) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert error.startswith("nnc-cleanse: internal error: RuntimeError: something nobody foresaw; please report it")


# Reading an NNP writes nothing ------------------------------------------------------------------

def test_nnp_member_names_cannot_write_outside(tmp_path, project, cli):
    """nnabla reads an NNP's members in memory; names such as ../../evil.nntxt or /abs/evil.nntxt write nothing."""
    outside = tmp_path / "outside"
    outside.mkdir()
    work = project["folder"] / "a" / "b"  # the command runs here: ../../evil.nntxt would land in project/
    work.mkdir(parents=True)
    escape = "../../evil.nntxt"
    absolute = str(outside / "absolute.nntxt")
    nnp = _zip(project["folder"] / "results.nnp", {
        "network.nntxt": open(project["model"]).read(),
        escape: "# a comment only: a valid, empty network definition\n",
        absolute: "# another one\n",
        "../../../../../../../../tmp/evil_nnc_cleanse_test.nntxt": "# and one more\n",
    })
    with zipfile.ZipFile(nnp) as archive:
        assert escape in archive.namelist() and absolute in archive.namelist()
    before = snapshot(tmp_path)
    cli("score", "-m", nnp, "-t", project["train"], "-v", project["val"], "-o", project["output"], "--epochs", "1",
        cwd=work)
    after = snapshot(tmp_path)
    added = sorted(set(after) - set(before))
    assert all(name.startswith("out/") for name in added), added
    assert not os.path.exists(project["folder"] / "evil.nntxt") and not os.path.exists(absolute)
    assert not os.path.exists("/tmp/evil_nnc_cleanse_test.nntxt")
    assert {k: v for k, v in after.items() if k in before} == before


def test_loading_an_nnp_opens_no_file_for_writing(tmp_path, project):
    """In-process: an audit hook sees every open() and file-system change made while the model loads."""
    nnp = _zip(project["folder"] / "results.nnp", {
        "network.nntxt": open(project["model"]).read(),
        "../../evil.nntxt": "# comment\n",
        "/evil_absolute.nntxt": "# comment\n",
    })
    events = []
    recording = [True]

    def hook(event, args):
        if not recording[0]:
            return
        if event == "open":
            mode, flags = (args + (None, None))[1:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writes:
                events.append((event, args[0]))
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree", "os.symlink",
                       "os.link", "os.truncate", "tempfile.mkstemp", "tempfile.mkdtemp"):
            events.append((event, args[0] if args else None))

    sys.addaudithook(hook)  # hooks cannot be removed; this one stops recording when the test ends
    try:
        project_loaded = load_project(nnp)
    finally:
        recording[0] = False
    assert project_loaded.train_network == "Main"
    assert events == [], events


def test_load_project_raises_only_user_errors_for_a_directory_named_nnp(tmp_path):
    (tmp_path / "model.nnp").mkdir()
    with pytest.raises(UserError):
        load_project(str(tmp_path / "model.nnp"))
