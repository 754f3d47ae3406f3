"""Groups of harmful rows that act together (outputs/groups.py), on scores whose truth is known."""
import numpy as np

from nnc_plugin.outputs.groups import CONCENTRATION, MIN_ROWS, describe, find_groups


def _labels(n, rng):
    return np.array([str(c) for c in rng.randint(0, 10, n)])


def test_a_label_concentrated_among_the_most_harmful_rows_is_a_group():
    """A tenth of the rows, two thirds of them labelled 7 (against a tenth of all rows): one group, labelled 7,
    its rows most harmful first, with its effects added up."""
    rng = np.random.RandomState(0)
    labels = _labels(2000, rng)
    scores = rng.uniform(0, 1, 2000)  # helpful rows
    sevens = np.flatnonzero(labels == "7")[:130]
    others = np.flatnonzero(labels != "7")[:70]
    scores[sevens] = -2.0 - rng.uniform(0, 1, len(sevens))
    scores[others] = -rng.uniform(0, 1, len(others))
    effects = scores * 0.01
    groups = find_groups(scores, labels, effects)
    assert len(groups) == 1 and groups[0].label == "7"
    assert groups[0].rows == sorted(sevens.tolist(), key=lambda r: scores[r])
    assert groups[0].share_of_top == 130 / 200 and np.isclose(groups[0].combined_effect, np.sum(effects[sevens]))


def test_wrong_labels_at_random_make_no_group():
    """The most harmful rows spread over the labels as the data does: no label stands out."""
    rng = np.random.RandomState(1)
    labels = _labels(2000, rng)
    scores = rng.normal(size=2000)
    assert find_groups(scores, labels) == []
    # a concentration below CONCENTRATION, or fewer than MIN_ROWS rows, is not a group either
    top = np.argsort(scores)[:200]
    few = top[:MIN_ROWS - 1]
    labels[few] = "odd"
    assert find_groups(scores, labels) == []
    assert CONCENTRATION * np.mean(labels == "odd") <= (MIN_ROWS - 1) / 200  # concentrated, but too few


def test_only_harmful_rows_count():
    """Rows with positive scores (helpful) never join a group, however many share a label."""
    rng = np.random.RandomState(2)
    labels = _labels(1000, rng)
    scores = rng.uniform(1, 2, 1000)
    scores[np.flatnonzero(labels == "3")[:60]] = 0.5  # lowest, yet not harmful
    assert find_groups(scores, labels) == []
    scores[np.flatnonzero(labels == "3")[:60]] = -0.5
    assert [g.label for g in find_groups(scores, labels)] == ["3"]


def test_a_group_says_whether_the_network_fits_its_rows():
    """With each row's training loss, a group whose rows mostly have losses below the median is fitted (a
    shortcut's rows), one whose rows mostly have losses above it is not (wrong labels of two look-alike classes);
    the log's sentence says which, and without losses neither is claimed."""
    rng = np.random.RandomState(4)
    labels = _labels(1000, rng)
    scores, losses = rng.uniform(0, 1, 1000), rng.uniform(0.5, 1.5, 1000)
    threes = np.flatnonzero(labels == "3")[:60]
    scores[threes] = -1.0
    losses[threes[:40]] = 0.01
    fitted = find_groups(scores, labels, losses=losses)[0]
    assert fitted.fitted is True and "fits most of them" in describe(fitted, 1)
    losses[threes[:40]] = 9.0
    misfit = find_groups(scores, labels, losses=losses)[0]
    assert misfit.fitted is False and "check their labels" in describe(misfit, 1)
    unknown = find_groups(scores, labels)[0]
    assert unknown.fitted is None and "artefact" in describe(unknown, 1)


def test_a_shortcut_in_one_class_is_found_shown_and_removed_as_a_group(tmp_path, sample_data, cli):
    """MNIST digits with a white square on three quarters of the 7s of training (benchmarks/harm_data.py's mark;
    every label right) and on a quarter of the validation rows of every class: `score` ranks the marked 7s first
    and names them as one group; the report shows it; `cleanse --group 1` removes those rows."""
    import importlib.util
    import json
    import os
    from helpers import read_csv, subset_csv
    spec = importlib.util.spec_from_file_location("harm_data", os.path.join(sample_data, "..", "benchmarks",
                                                                           "harm_data.py"))
    harm_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harm_data)
    data = harm_data.write("mark", str(tmp_path / "mark"), seed=0)
    train = subset_csv(os.path.join(data, "train.csv"), tmp_path / "train.csv", 2000)
    marked = set(np.flatnonzero(harm_data.harmful_rows(data)[:2000]).tolist())
    model = os.path.join(sample_data, "mnist", "mnist_cnn.nntxt")
    output = tmp_path / "out" / "influence.csv"
    cli("score", "-m", model, "-t", train, "-v", os.path.join(data, "val.csv"), "-e", "4", "-r", "influence",
        "-o", output)
    ranked = [int(row[-1]) for row in read_csv(output)[1:]]
    assert len(marked & set(ranked[:len(marked)])) >= 0.6 * len(marked)  # most marked 7s come first
    with open(str(output) + ".summary.json", encoding="utf-8") as f:
        groups = json.load(f)["groups"]
    assert groups and groups[0]["label"] == "7" and len(set(groups[0]["rows"]) & marked) >= 0.8 * len(groups[0]["rows"])
    assert groups[0]["fitted"] is True  # the network learned the marked 7s: their training loss is low
    report = tmp_path / "report.html"
    cli("report", "-i", output, "-o", report)
    page = report.read_text(encoding="utf-8")
    assert "Harmful rows that act together" in page and "The network fits most of them" in page
    cleansed = tmp_path / "cleansed.csv"
    cli("cleanse", "-i", output, "-o", cleansed, "--group", "1")
    assert len(read_csv(cleansed)) == 2001 - len(groups[0]["rows"])
