"""`nnc-cleanse evaluate`: remove the most harmful rows, retrain, compare with random removal."""
import numpy as np

from helpers import read_csv


def test_evaluate_writes_tables_and_plot(tmp_path, digits, cli):
    noisy = f"{digits['folder']}/data/train_noisy_s0.csv"
    output = tmp_path / "evaluation"
    cli("evaluate", "-m", digits["model"], "-t", noisy, "--input-test", digits["test"], "-o", output,
        "-k", "10%", "-r", "loss-history", "--seeds", "2", "--epochs", "3")
    table = read_csv(output / "evaluation.csv")
    assert table[0] == ["k", "ranking", "seed", "removed", "test_accuracy", "test_loss"]
    runs = {(int(r[0]), r[1], int(r[2])) for r in table[1:]}
    assert runs == {(0, "none", 0), (0, "none", 1), (100, "loss-history", 0), (100, "loss-history", 1),
                    (100, "random", 0), (100, "random", 1)}
    accuracies = np.array([float(r[4]) for r in table[1:]])
    assert np.all((accuracies > 0.5) & (accuracies <= 1.0))
    summary = read_csv(output / "evaluation_summary.csv")
    assert [r[1] for r in summary[1:]] == ["none", "loss-history", "random"]
    assert (output / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (output / "evaluation_summary.md").read_text().count("|") > 10
    assert (output / "scores_loss-history.csv").exists()
    assert not (output / "work").exists()  # the retraining caches are cleaned up


def test_evaluate_refuses_the_training_csv_as_test_set(tmp_path, digits, cli):
    result = cli("evaluate", "-m", digits["model"], "-t", digits["train"], "--input-test", digits["train"],
                 "-o", tmp_path / "e", "-k", "10", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "test CSV is the training CSV" in result.stderr
