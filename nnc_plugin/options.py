"""Every option of every command, declared once: its flags, default, choices and help.

The dataclasses are what the package's verbs take (`score(ScoreOptions(model=...))`); the
command line (cli.py) and the NNC plugin scripts build their argparse parsers from the same
fields with `add_arguments`, and turn the parsed arguments back into a dataclass with `from_args`.
Help texts follow NNC's plugins: the value's type in brackets, then the default.
"""
import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import List, Optional, Union

from .errors import UserError
from .scores import DEFAULT_RANKING, FALLBACK_RANKING, names as ranking_names
from .training.trial_policy import AUTO

MODES = ("final", "all")
STARTS = ("auto", "initial", "trained")
CONTEXTS = ("cpu", "cudnn")


def option(*flags, default=None, help="", advanced=False, **argparse_keywords):
    """A dataclass field that is also a command-line option.

    `advanced` options are hidden in the NNC plugin dialog; `argparse_keywords` (choices, type, nargs,
    required, action) go to `add_argument`. `help` and `choices` may be callables, evaluated when a parser is
    built (the registered rankings)."""
    metadata = {"flags": flags, "help": help, "advanced": advanced, "argparse": argparse_keywords}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def nested(options_class, leave_out=()):
    """A dataclass field that holds the options of another command, which this command takes as its own: every
    option of `options_class` but those in `leave_out` (this command sets them itself)."""
    return dataclasses.field(default_factory=options_class,
                             metadata={"nested": options_class, "leave_out": tuple(leave_out)})


def _option_fields(options_class, leave_out=()):
    """(field, nested class or None) of every option of `options_class`, nested options included."""
    for field in dataclasses.fields(options_class):
        if field.name in leave_out:
            continue
        if "nested" in field.metadata:
            for inner, _ in _option_fields(field.metadata["nested"], field.metadata["leave_out"]):
                yield inner, field.metadata["nested"]
        elif field.metadata.get("flags"):
            yield field, None


def add_arguments(parser, options_class, hide_advanced=False, defaults=None):
    """Add the options of `options_class` to an argparse parser (`defaults`: {field: other default})."""
    defaults = defaults or {}
    for field, _ in _option_fields(options_class):
        meta = field.metadata
        default = defaults.get(field.name, field.default_factory() if field.default_factory is not dataclasses.MISSING
                               else field.default)
        text = meta["help"]() if callable(meta["help"]) else meta["help"]
        if field.name in defaults and default is not None:
            text = f"{text} default={str(default).replace('%', '%%')}"
        keywords = dict(meta["argparse"], dest=field.name,
                        help=argparse.SUPPRESS if meta["advanced"] and hide_advanced else text)
        if callable(keywords.get("choices")):
            keywords["choices"] = keywords["choices"]()
        if keywords.get("action") != "store_true":
            keywords["default"] = default
        parser.add_argument(*meta["flags"], **keywords)


def from_args(options_class, args):
    """The `options_class` dataclass filled from parsed arguments (fields the parser lacks keep their defaults;
    a nested field gets its own dataclass, filled the same way)."""
    given, values = vars(args), {}
    for field in dataclasses.fields(options_class):
        if "nested" in field.metadata:
            values[field.name] = from_args(field.metadata["nested"], argparse.Namespace(
                **{k: v for k, v in given.items() if k not in field.metadata["leave_out"]}))
        elif field.name in given:
            values[field.name] = given[field.name]
    return options_class(**values)


def ranking_help():
    """The help of --ranking, from the registered rankings' own words."""
    from .scores import ranking_class
    listed = "; ".join(f"{name}, {ranking_class(name).help}" for name in ranking_names())
    return (f"how to rank the rows: {listed}; without validation data, or where nnabla cannot differentiate the "
            f"network twice, the default gives way to {FALLBACK_RANKING} (text) default={DEFAULT_RANKING}")


def trials_help():
    """The help of -nt."""
    return ("number of trials (train + score with another seed), averaged; auto: one; 3 gives steadier scores at "
            "three times the cost (text) default=auto")


def parse_trial_count(text):
    """-nt's value: AUTO, or a whole number (checked by `_check_trials`)."""
    text = str(text).strip()
    if text.lower() == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number of trials or 'auto', not '{text}'") from None


def _check_trials(value):
    if value != AUTO and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserError("The number of trials (--n-trials) must be 'auto' or a whole number, 1 or more, "
                        f"not {value!r}.")


def _check_at_least_one(options, *names):
    for name in names:
        value = getattr(options, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be 1 or more, not {value}.")


def _check_choice(flag, value, choices):
    if value not in choices:
        raise UserError(f"{flag} must be one of {', '.join(choices)}, not '{value}'.")


@dataclass
class ScoreOptions:
    """What `nnc-cleanse score` does.

    Examples
    --------
    >>> from nnc_plugin.options import ScoreOptions
    >>> options = ScoreOptions(model="sample_projects/digits/digits_mlp.nntxt", ranking="sgd-influence", epochs=2)
    >>> options.validate()
    >>> options.default_cache_dir().endswith("influence_cache")
    True
    """
    model: str = option("-m", "--model", default="results.nnp",
                        help="path to model nnp file, .nntxt or NNC results folder (model) default=results.nnp")
    input_train: Optional[str] = option(
        "-t", "--input-train", "--input_train",
        help="path to training dataset csv file (csv); if empty, the model's training dataset")
    input_val: Optional[str] = option(
        "-v", "--input-val", "--input_val",
        help="path to validation dataset csv file (csv); if empty, the model's validation dataset")
    output: str = option("-o", "--output", default="influence.csv",
                         help="path to output csv file (csv) default=influence.csv")
    ranking: Optional[str] = option("-r", "--ranking", default=None, choices=ranking_names,
                                    help=lambda: ranking_help())  # None: the default (pipeline.chosen_ranking)
    n_trials: Union[int, str] = option("-nt", "--n-trials", "--n_trials", default=AUTO, type=parse_trial_count,
                                       help=trials_help)
    seed: int = option("-s", "--seed", default=0, type=int, help="random seed of the first trial (int) default=0")
    batch_size: Optional[int] = option("-bs", "--batch-size", "--batch_size", type=int,
                                       help="training batch size (int); if empty, the model's batch size")
    start_from: str = option("--start-from", "--start_from", default="auto", choices=STARTS,
                             help="trained: start from the trained parameters in the model file and train only "
                                  "the traced epochs, at the learning rates the schedule ends with; initial: train "
                                  "every epoch from the network's initialisation, as NNC does; auto: trained when "
                                  "the model file holds trained parameters (text) default=auto")
    epochs: Optional[int] = option("-e", "--epochs", type=int, advanced=True,
                                   help="training epochs (int) default=the model's Max Epoch")
    mode: str = option("--mode", default="final", choices=MODES, advanced=True,
                       help="final: storage-efficient, gradients at the final parameters (default); "
                            "all: exact, caches the parameters of every traced step")
    trace_epochs: int = option("--trace-epochs", default=1, type=int, advanced=True,
                               help="how many final epochs to trace back through (int) default=1")
    cache_dir: Optional[str] = option("--cache-dir", advanced=True,
                                      help="folder for the training cache (folder) default=<output>_cache beside the output")
    context: str = option("--context", default="cpu", choices=CONTEXTS, advanced=True,
                          help="nnabla context: cpu, or cudnn for an NVIDIA GPU (needs nnabla-ext-cuda) default=cpu")
    reference: bool = option("--reference", default=False, action="store_true", advanced=True,
                             help="use the slow per-sample reference computation (for checking)")

    def validate(self):
        """Refuse an impossible combination in one sentence (the parser has checked the types)."""
        if self.ranking is not None:
            _check_choice("--ranking", self.ranking, ranking_names())
        _check_choice("--mode", self.mode, MODES)
        _check_choice("--start-from", self.start_from, STARTS)
        _check_choice("--context", self.context, CONTEXTS)
        _check_trials(self.n_trials)
        if self.trace_epochs < 1:
            raise UserError(f"--trace-epochs must be 1 or more, not {self.trace_epochs}.")
        _check_at_least_one(self, "epochs", "batch_size")

    def default_cache_dir(self):
        """`<output>_cache` beside the output: where the training cache goes when --cache-dir is not given."""
        stem = os.path.splitext(os.path.abspath(self.output))[0]
        return stem + "_cache"


@dataclass
class EvaluateOptions:
    """What `nnc-cleanse evaluate` does: every option of `score` (each ranking is scored as `score` would), and
    how to remove and retrain."""
    scoring: ScoreOptions = nested(ScoreOptions, leave_out=("output", "ranking", "cache_dir"))
    input_test: str = option("--input-test", "--input_test", required=True,
                             help="path to test dataset csv file, used only to measure accuracy (csv)")
    output_dir: str = option("-o", "--output", default="evaluation",
                             help="output folder for the tables and the plot (folder) default=evaluation")
    remove: List[str] = option("-k", "--remove", default=["1%", "2.5%", "5%", "10%"], nargs="+",
                               help="how many rows to remove: counts or percentages (text) default=1%% 2.5%% 5%% 10%%")
    rankings: List[str] = option("-r", "--rankings", default=[DEFAULT_RANKING, FALLBACK_RANKING], nargs="+",
                                 help="rankings to compare, random is always added (text) "
                                      f"default={DEFAULT_RANKING} {FALLBACK_RANKING}")
    seeds: int = option("--seeds", default=3, type=int,
                        help="retrainings per point, with seeds 0, 1, ... (int) default=3")

    def validate(self):
        """Refuse an impossible combination in one sentence (the parser has checked the types)."""
        self.scoring.validate()
        for ranking in self.rankings:
            if ranking not in ranking_names():
                raise UserError(f"--rankings takes {', '.join(ranking_names())} (random is always included), "
                                f"not '{ranking}'.")
        if self.seeds < 1:
            raise UserError(f"--seeds must be 1 or more, not {self.seeds}.")


def scored_csv_input():
    """-i: the scored CSV that `cleanse` and `report` read."""
    return option("-i", "--input", default="influence.csv",
                  help="path to scored csv file written by score (csv) default=influence.csv")


@dataclass
class CleanseOptions:
    """What `nnc-cleanse cleanse` does."""
    input: str = scored_csv_input()
    output: str = option("-o", "--output", default="train_cleansed.csv",
                         help="path to output cleansed training csv file (csv) default=train_cleansed.csv")
    remove: Optional[str] = option("-k", "--remove",
                                   help="number of most harmful rows to remove, or a percentage such as 5%% (text)")
    threshold: Optional[float] = option(
        "-th", "--threshold", type=float,
        help="instead, remove every row whose score (influence column) is below this value (float)")
    group: Optional[int] = option(
        "-g", "--group", type=int,
        help="instead, remove all the rows of this group of harmful rows that act together, clean rows of its "
             "class among them (the report lists the "
             "groups, numbered from 1) (int)")


@dataclass
class ReportOptions:
    """What `nnc-cleanse report` does."""
    input: str = scored_csv_input()
    output: str = option("-o", "--output", default="influence_report.html",
                         help="path to output html file (html) default=influence_report.html")
    top: Optional[int] = option("--top", type=int,
                                help="how many of the most harmful and of the most helpful samples to show (int) "
                                     "default=24")
