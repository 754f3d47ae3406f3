"""`nnc-cleanse cleanse`: the training CSV without its most harmful rows, ready to retrain."""
import hashlib
import os

import numpy as np
import pytest

from helpers import read_csv, run_command, tool


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _by_score(scored_csv):
    """Datasource indices of the scored CSV, most harmful first, and their scores."""
    table = read_csv(scored_csv)
    return [int(r[-1]) for r in table[1:]], np.array([float(r[-2]) for r in table[1:]])


def test_removes_the_k_most_harmful_rows_and_keeps_everything_else(tmp_path, scored_digits, cli):
    before = {p: _digest(p) for p in (scored_digits["csv"], scored_digits["train"])}
    output = tmp_path / "elsewhere" / "train_cleansed.csv"
    result = cli("cleanse", "-i", scored_digits["csv"], "-o", output, "-k", "50")
    assert "Removed the 50 most harmful of 1000 rows" in result.stderr

    original = read_csv(scored_digits["train"])
    cleansed = read_csv(output)
    assert cleansed[0] == original[0], "same header and columns as the training CSV"
    ranked, _ = _by_score(scored_digits["csv"])
    kept = sorted(set(range(1000)) - set(ranked[:50]))
    assert len(cleansed) - 1 == 950
    for row, index in zip(cleansed[1:], kept):  # original order, each row's own cells, paths resolving from output
        source = original[index + 1]
        assert row[1] == source[1]
        assert os.path.samefile(os.path.join(output.parent, row[0]),
                                os.path.join(os.path.dirname(scored_digits["train"]), source[0]))
    assert {p: _digest(p) for p in before} == before, "the inputs must not change"


def test_percentage_and_threshold(tmp_path, scored_digits, cli):
    ranked, scores = _by_score(scored_digits["csv"])
    cli("cleanse", "-i", scored_digits["csv"], "-o", tmp_path / "p.csv", "-k", "10%")
    assert len(read_csv(tmp_path / "p.csv")) - 1 == 900

    result = cli("cleanse", "-i", scored_digits["csv"], "-o", tmp_path / "t.csv", "--threshold", "0")
    negative = int((scores < 0).sum())
    assert 0 < negative < 1000
    assert len(read_csv(tmp_path / "t.csv")) - 1 == 1000 - negative
    assert "positive influence" not in result.stderr  # a threshold of 0 removes only harmful rows

    result = cli("cleanse", "-i", scored_digits["csv"], "-o", tmp_path / "many.csv", "-k", str(negative + 5))
    assert "5 of the removed rows have a positive influence" in result.stderr


def test_cleansed_csv_retrains_with_nnabla_cli(tmp_path, scored_digits, cli):
    """The cleansed CSV is the Training dataset of the sample project, unchanged, for nnabla's own trainer."""
    cleansed = tmp_path / "data" / "train_cleansed.csv"
    cli("cleanse", "-i", scored_digits["csv"], "-o", cleansed, "-k", "50")
    with open(scored_digits["model"], encoding="utf-8") as f:
        config = f.read()
    for old, new in {'uri: "data/train.csv"': f'uri: "{cleansed}"',
                     'uri: "data/val.csv"': f'uri: "{scored_digits["val"]}"',
                     "max_epoch: 10": "max_epoch: 1"}.items():
        assert old in config
        config = config.replace(old, new)
    (tmp_path / "cleansed.nntxt").write_text(config, encoding="utf-8")
    results = tmp_path / "results"
    results.mkdir()  # nnabla_cli train writes into an existing folder
    run = run_command(tool("nnabla_cli"), "train", "-c", tmp_path / "cleansed.nntxt", "-o", results, check=True,
                      cwd=tmp_path)
    log = run.stdout + run.stderr
    assert "Training Completed." in log
    assert "cache_00000900_00000949" in log, "nnabla must have read the 950 cleansed rows"
    assert (results / "results.nnp").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["-k", "50", "--threshold", "0"], "not several"),
    (["-k", "50", "--group", "1"], "not several"),
    ([], "Say which rows to remove"),
    (["--group", "3"], "is not a group of the run summary"),
    (["-k", "1001"], "more than the 1000 rows"),
    (["-k", "100%"], "would remove all 1000 rows"),
    (["-k", "many"], "--remove must be a number of rows"),
    (["-k", "150%"], "percentage from 0% to 100%"),
])
def test_bad_choice_of_rows_is_one_sentence(tmp_path, scored_digits, cli, arguments, message):
    output = tmp_path / "out.csv"
    result = cli("cleanse", "-i", scored_digits["csv"], "-o", output, *arguments, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) > 20
    assert not output.exists()


def test_refuses_to_overwrite_inputs_and_reads_only_scored_csvs(tmp_path, scored_digits, cli):
    before = {p: _digest(p) for p in (scored_digits["csv"], scored_digits["train"])}
    for target in (scored_digits["csv"], scored_digits["train"]):  # the scored CSV, and the training CSV it came from
        result = cli("cleanse", "-i", scored_digits["csv"], "-o", target, "-k", "5", check=False)
        assert result.returncode == 2 and "choose another output name" in result.stderr
    result = cli("cleanse", "-i", scored_digits["train"], "-o", tmp_path / "x.csv", "-k", "5", check=False)
    assert result.returncode == 2 and "is not a scored CSV" in result.stderr
    result = cli("cleanse", "-i", tmp_path / "missing.csv", "-o", tmp_path / "x.csv", "-k", "5", check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr
    broken = tmp_path / "broken.csv"
    table = read_csv(scored_digits["csv"])
    table[3][-2] = "abc"
    broken.write_text("\n".join(",".join(r) for r in table) + "\n", encoding="utf-8")
    result = cli("cleanse", "-i", broken, "-o", tmp_path / "x.csv", "-k", "5", check=False)
    assert result.returncode == 2 and "Row 4 of" in result.stderr and "'abc' is not a finite number" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p: _digest(p) for p in before} == before


def test_a_group_that_holds_most_of_its_class_is_removed_with_a_warning(tmp_path, scored_digits, cli):
    """Removing a group whole also removes the clean rows of its class beside the harmful ones; where it holds most
    of its label's rows, `cleanse --group` says so (measured: such removals hurt), and removes it all the same."""
    import json
    import shutil
    scored = tmp_path / "influence.csv"
    shutil.copy(scored_digits["csv"], scored)
    with open(scored_digits["csv"] + ".summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    labels = [row[1] for row in read_csv(scored_digits["train"])[1:]]
    threes = [i for i, label in enumerate(labels) if label == "3"]
    summary["groups"] = [
        {"label": "3", "rows": threes[:int(0.8 * len(threes))], "share_of_top": 0.6,
         "share_of_data": len(threes) / len(labels), "combined_effect": None, "fitted": True},
        {"label": "3", "rows": threes[:int(0.3 * len(threes))], "share_of_top": 0.3,
         "share_of_data": len(threes) / len(labels), "combined_effect": None, "fitted": True}]
    with open(str(scored) + ".summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f)
    most = cli("cleanse", "-i", scored, "-o", tmp_path / "most.csv", "--group", "1")
    kept = len(threes) - int(0.8 * len(threes))
    assert f"Warning: group 1 holds {int(0.8 * len(threes))} of the {len(threes)} rows labelled 3" in most.stderr
    assert f"sees only {kept} rows of that class" in most.stderr
    assert len(read_csv(tmp_path / "most.csv")) - 1 == len(labels) - int(0.8 * len(threes))
    some = cli("cleanse", "-i", scored, "-o", tmp_path / "some.csv", "--group", "2")
    assert "Warning" not in some.stderr
