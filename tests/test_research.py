"""The research scripts run on tiny data (seconds), so a change to the package that breaks one shows here."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "research", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_influence_budget_compares_its_variants(sample_data, tmp_path, monkeypatch):
    from nnc_plugin.scores import names
    budget = _script("influence_budget")
    monkeypatch.setattr(budget, "publish", lambda name, table, raw: (tmp_path / "table.md").write_text(table))
    results = budget.main(["--project", "digits", "--regimes", "adam", "--noise-seeds", "0", "--epochs", "2",
                           "--rows", "120", "--variants", "unbounded", "bound128"])
    row = results["adam"][0]
    assert set(row) == {"sgd-influence", "influence-unbounded", "influence-bound128"}
    for measured in row.values():
        assert 0.0 <= measured["auroc"] <= 1.0 and measured["seconds"] > 0
    assert "influence-bound128" in (tmp_path / "table.md").read_text()
    assert "influence-bound128" not in names()  # tried in a block, registered nowhere


def test_harm_scores_a_shortcut_and_retrains_without_it(sample_data, tmp_path, monkeypatch):
    harm = _script("harm")
    monkeypatch.setattr(harm, "publish", lambda name, table, raw: (tmp_path / "table.md").write_text(table))
    results = harm.main(["--kinds", "mark", "--seeds", "0", "--rows", "200", "--epochs", "1", "--rankings",
                         "loss-history", "influence", "conflict-final", "--retrain", "1", "--retrain-first", "4",
                         "--retrain-groups", "--retrain-rankings", "influence", "--split", "influence",
                         "--save-scores", str(tmp_path / "scores")])
    run = results["mark"][0]
    assert {"loss-history", "influence", "conflict-final", "loss-history+influence"} <= set(run["detection"])
    assert all(0.0 <= d["auroc"] <= 1.0 for d in run["detection"].values())
    split = {"harmful rows in influence's first k", "harmful rows after influence's first k"}
    groups = {"influence's groups"} & set(run["test_loss"])  # the rows `cleanse --group` removes, where any
    assert set(run["test_loss"]) - groups == {"nothing", "the harmful rows", "random", "influence"} | split
    assert all(len(each) == 1 and [run["test_loss"][what]] == each for what, each in run["test_losses"].items())
    assert sum(run["removed"][what] for what in split) == run["removed"]["the harmful rows"]
    assert "Test loss after removing" in (tmp_path / "table.md").read_text()
    # research/fusion.py reads the saved scores and combines them by every rule, the package's witness among them
    lines = _script("fusion").main([str(tmp_path / "scores")])
    assert any(line.startswith("| witness (0.7) | ") and "mark (initial)" in lines[2] for line in lines)
