"""A training that did not learn is said out loud: in the log, the run summary and the report."""
import json

from helpers import variant

NO_INITIALIZER = {'''    initializer {
      type: "NormalAffineGlorot"
      multiplier: 1
    }
''': ""}


def _summary(output):
    with open(str(output) + ".summary.json", encoding="utf-8") as f:
        return json.load(f)


def test_parameters_without_initializer_are_reported(tmp_path, digits, cli):
    model = variant(digits["model"], tmp_path / "digits.nntxt", NO_INITIALIZER)
    output = tmp_path / "influence.csv"
    result = cli("score", "-m", model, "-t", digits["train"], "-v", digits["val"], "-o", output, "--epochs", "2")
    log = result.stderr + result.stdout
    assert "Warning: The parameters Affine/affine/W, Affine_2/affine/W have no initializer" in log
    warnings = _summary(output)["warnings"]
    assert "started them at zero" in warnings[0]
    assert any("did not fall" in w for w in warnings)  # zero weights: nothing reaches the output, nothing is learned
    cli("report", "-i", output, "-o", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'class="warning"' in page and "have no initializer" in page


def test_a_loss_that_never_falls_is_reported_and_a_learning_run_is_not(tmp_path, digits, cli):
    frozen = variant(digits["model"], tmp_path / "frozen.nntxt", {"lr: 0.1": "lr: 0.0"})
    output = tmp_path / "frozen.csv"
    cli("score", "-m", frozen, "-t", digits["train"], "-v", digits["val"], "-o", output, "--epochs", "3")
    assert any("did not fall" in w for w in _summary(output)["warnings"])
    learning = tmp_path / "learning.csv"
    cli("score", "-m", digits["model"], "-t", digits["train"], "-v", digits["val"], "-o", learning, "--epochs", "3")
    assert _summary(learning)["warnings"] == []
