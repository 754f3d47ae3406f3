"""Neural Network Console plugin: rank every training sample for data cleansing (nnc-cleanse).

Copy this file into NNC's plugins folder (libs/plugins/_Post_Process/_XAI/); see docs/plugin.md.
NNC builds the plugin's dialog from the argparse definition below and runs the script from
the training result selected in its Evaluation tab. The script only parses arguments and calls
the `nnc_plugin` package: it writes the scored CSV (most harmful rows first), its run summary
and an HTML report.
"""
import argparse
import os
import sys

DESCRIPTION = """Data Cleansing: score the training data by influence, most harmful first (SGD Influence)

Re-trains the model as its training configuration says, then scores every training sample by its
effect on the validation loss; the lower the score, the more harmful the sample (nnc-cleanse): a
wrong label, or a right label on a row that still hurts (an artefact shared by one class). Writes the
training CSV with 'influence' (the score) and 'datasource_index' columns, most harmful first, and an
HTML report. Rankings (-r): {rankings}; the default is {default}.
influence and sgd-influence build on SGD influence on the validation loss, as in

"Data Cleansing for Models Trained with SGD"
  Satoshi Hara, Atsushi Nitanda, Takanori Maehara (NeurIPS 2019)
https://papers.nips.cc/paper/2019/hash/5f14615696649541a025d3d0f8e0447f-Abstract.html
"Data Cleansing for Deep Neural Networks with Storage-efficient Approximation of Influence Functions"
  Kenji Suzuki, Yoshiyuki Kobayashi, Takuya Narihira (2021)
https://arxiv.org/abs/2103.11807
"""


# Without the package (NNC's own Python before the set-up of docs/plugin.md), `-h` must still answer:
# NNC builds the plugin's dialog from it. These are the arguments the package defines (options.py);
# tests/test_plugins.py checks that both give the same help.
RANKINGS = ("influence", "loss-history", "loss", "self-influence", "sgd-influence", "tracin-cp")
DEFAULT_RANKING = "influence"
MISSING = ("nnc-cleanse: error: the nnc_plugin package is not installed in the Python that runs this plugin ({}); "
           "install it there or set NNC_CLEANSE_HOME to the nnc-cleanse folder, as docs/plugin.md says.\n")


def import_package():
    """Make `nnc_plugin` importable: installed in this Python, in NNC_CLEANSE_HOME, or above this script.

    Returns False when it is in none of them."""
    try:
        import nnc_plugin  # noqa: F401
        return True
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("NNC_CLEANSE_HOME", "")]
    while os.path.dirname(here) != here:
        here = os.path.dirname(here)
        candidates.append(here)
    for folder in candidates:
        if folder and os.path.isfile(os.path.join(folder, "nnc_plugin", "__init__.py")):
            sys.path.insert(0, folder)
            return True
    return False


def build_parser(package=True):
    if package:
        from nnc_plugin.options import ScoreOptions, add_arguments
        from nnc_plugin.scores import DEFAULT_RANKING as default, names
        rankings = names()
    else:
        default, rankings = DEFAULT_RANKING, RANKINGS
    description = DESCRIPTION.format(rankings=", ".join(rankings), default=default)
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    if package:
        add_arguments(parser, ScoreOptions, hide_advanced=True)
    else:
        _add_arguments_without_package(parser)
    parser.add_argument("-rp", "--report", default="influence_report.html",
                        help="path to output html report file (html) default=influence_report.html")
    return parser


def _add_arguments_without_package(parser):
    """The dialog's fields as options.ScoreOptions defines them (advanced ones hidden)."""
    add = parser.add_argument
    add("-m", "--model", default="results.nnp",
        help="path to model nnp file, .nntxt or NNC results folder (model) default=results.nnp")
    add("-t", "--input-train", "--input_train", dest="input_train", default=None,
        help="path to training dataset csv file (csv); if empty, the model's training dataset")
    add("-v", "--input-val", "--input_val", dest="input_val", default=None,
        help="path to validation dataset csv file (csv); if empty, the model's validation dataset")
    add("-o", "--output", default="influence.csv", help="path to output csv file (csv) default=influence.csv")
    add("-r", "--ranking", choices=RANKINGS, default=None,
        help="how to rank the rows: influence, each row's effect on the validation loss, with its training loss as a "
             "second witness, the default: finds mislabelled rows and rows labelled right that still hurt, such as a "
             "class with an artefact (docs/evidence.md); "
             "loss-history, each row's training loss over the second half of training: finds mislabelled rows, not "
             "rows the network fits that still hurt (docs/evidence.md); loss, each row's loss at the end of training; "
             "self-influence, how much each row's own training step lowers its own loss; sgd-influence, influence on "
             "the validation loss (SGD-influence); tracin-cp, first-order influence on the validation loss at the last "
             "3 epochs' ends (TracIn-CP): needs no second derivative, for networks the other influence rankings "
             "refuse; without validation data, or where nnabla cannot differentiate the network twice, the default "
             f"gives way to loss-history (text) default={DEFAULT_RANKING}")
    add("-nt", "--n-trials", "--n_trials", dest="n_trials", default="auto",
        help="number of trials (train + score with another seed), averaged; auto: one; 3 gives steadier scores at "
             "three times the cost (text) default=auto")
    add("-s", "--seed", type=int, default=0, help="random seed of the first trial (int) default=0")
    add("-bs", "--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
        help="training batch size (int); if empty, the model's batch size")
    add("--start-from", "--start_from", choices=("auto", "initial", "trained"), default="auto",
        help="trained: start from the trained parameters in the model file and train only the traced epochs, at the "
             "learning rates the schedule ends with; initial: train every epoch from the network's initialisation, as "
             "NNC does; auto: trained when the model file holds trained parameters (text) default=auto")
    for names in (("-e", "--epochs"), ("--mode",), ("--trace-epochs",), ("--cache-dir",), ("--context",)):
        add(*names, help=argparse.SUPPRESS)
    add("--reference", action="store_true", help=argparse.SUPPRESS)


def run(args):
    from nnc_plugin.log import info
    from nnc_plugin.options import ScoreOptions, from_args
    from nnc_plugin.files import check_writable
    from nnc_plugin.outputs.report import write_report
    from nnc_plugin.pipeline import score

    if args.context == "cudnn":  # reproducible GPU runs, as NNC's own SGD influence plugin sets
        os.environ.setdefault("NNABLA_CUDNN_DETERMINISTIC", "1")
        os.environ.setdefault("NNABLA_CUDNN_ALGORITHM_BY_HEURISTIC", "1")
    check_writable(args.report, inputs=(args.model, args.input_train, args.input_val, args.output))
    score(from_args(ScoreOptions, args))
    write_report(args.output, args.report)
    info(f"Data cleansing scores completed successfully. Open {args.output} to see the most harmful samples "
         f"first, or {args.report} in a web browser.")


def main(argv=None):
    package = import_package()
    args = build_parser(package).parse_args(argv)  # -h answers here, with or without the package
    if not package:
        sys.stderr.write(MISSING.format(sys.executable))
        return 2
    from nnc_plugin.cli import run_safely
    return run_safely(run, args)


if __name__ == "__main__":
    sys.exit(main())
