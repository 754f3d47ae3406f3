"""`nnc-cleanse`: the command line. It parses arguments and calls the package, nothing more."""
import argparse
import os
import sys

from .errors import InterruptedAfterWriting, UserError
from .rankings import DEFAULT_RANKING as DEFAULT_RANKING_NAME
from .rankings import RANKINGS as RANKING_CHOICES

DESCRIPTION = (
    "Find harmful training samples (mislabeled or otherwise) of a Neural Network Console classifier: re-train it "
    "as its configuration says and rank every training row, by its loss during training (the default) or by "
    "SGD-influence (Hara, Nitanda, Maehara, NeurIPS 2019) in its storage-efficient form "
    "(Suzuki, Kobayashi, Narihira, arXiv 2103.11807).")


def add_score_arguments(parser, hide_advanced=False):
    """The arguments of `score`, shared with the NNC plugin script (which hides the advanced ones)."""
    advanced = (lambda text: argparse.SUPPRESS) if hide_advanced else (lambda text: text)
    parser.add_argument("-m", "--model", default="results.nnp",
                        help="path to model nnp file, .nntxt or NNC results folder (model) default=results.nnp")
    parser.add_argument("-t", "--input-train", "--input_train", dest="input_train", default=None,
                        help="path to training dataset csv file (csv); if empty, the model's training dataset")
    parser.add_argument("-v", "--input-val", "--input_val", dest="input_val", default=None,
                        help="path to validation dataset csv file (csv); if empty, the model's validation dataset")
    parser.add_argument("-o", "--output", default="influence.csv",
                        help="path to output csv file (csv) default=influence.csv")
    parser.add_argument("-r", "--ranking", choices=RANKING_CHOICES, default=DEFAULT_RANKING_NAME,
                        help="how to rank the rows: loss-history, each row's training loss over the "
                             "second half of training, the best at finding mislabeled rows (docs/evidence.md); "
                             "sgd-influence, influence on the validation loss; loss; self-influence "
                             f"(text) default={DEFAULT_RANKING_NAME}")
    parser.add_argument("-nt", "--n-trials", "--n_trials", dest="n_trials", type=int, default=None,
                        help="number of trials (train + score with another seed), averaged (int) default=1")
    parser.add_argument("-s", "--seed", type=int, default=0,
                        help="random seed of the first trial (int) default=0")
    parser.add_argument("-bs", "--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
                        help="training batch size (int); if empty, the model's batch size")
    parser.add_argument("-e", "--epochs", type=int, default=None,
                        help=advanced("training epochs (int) default=the model's Max Epoch"))
    parser.add_argument("--mode", choices=("final", "all"), default="final",
                        help=advanced("final: storage-efficient, gradients at the final parameters (default); "
                                      "all: exact, caches the parameters of every traced step"))
    parser.add_argument("--trace-epochs", dest="trace_epochs", type=int, default=1,
                        help=advanced("how many final epochs to trace back through (int) default=1"))
    parser.add_argument("--cache-dir", dest="cache_dir", default=None,
                        help=advanced("folder for the training cache (folder) default=<output>_cache beside the output"))
    parser.add_argument("--context", choices=("cpu", "cudnn"), default="cpu",
                        help=advanced("nnabla context: cpu, or cudnn for an NVIDIA GPU (needs nnabla-ext-cuda) default=cpu"))
    parser.add_argument("--reference", action="store_true",
                        help=advanced("use the slow per-sample reference computation (for checking)"))


def score_options_from(args):
    from .pipeline import DEFAULT_TRIALS, ScoreOptions
    return ScoreOptions(
        model=args.model, input_train=args.input_train, input_val=args.input_val, output=args.output,
        ranking=args.ranking, mode=args.mode, n_trials=args.n_trials if args.n_trials is not None else DEFAULT_TRIALS,
        seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, trace_epochs=args.trace_epochs,
        cache_dir=args.cache_dir, context=args.context, reference=args.reference)


def _score(args):
    from .pipeline import score
    score(score_options_from(args))


def add_cleanse_arguments(parser, remove_default=None):
    """The arguments of `cleanse`, shared with the NNC plugin script."""
    parser.add_argument("-i", "--input", default="influence.csv",
                        help="path to scored csv file written by score (csv) default=influence.csv")
    parser.add_argument("-o", "--output", default="train_cleansed.csv",
                        help="path to output cleansed training csv file (csv) default=train_cleansed.csv")
    parser.add_argument("-k", "--remove", default=remove_default,
                        help="number of most harmful rows to remove, or a percentage such as 5%% (text)"
                             + (f" default={remove_default.replace('%', '%%')}" if remove_default else ""))
    parser.add_argument("-th", "--threshold", type=float, default=None,
                        help="instead, remove every row whose score (influence column) is below this value (float)")


def _cleanse(args):
    from .cleanse import cleanse
    cleanse(args.input, args.output, remove=args.remove, threshold=args.threshold)


def add_report_arguments(parser):
    """The arguments of `report`."""
    parser.add_argument("-i", "--input", default="influence.csv",
                        help="path to scored csv file written by score (csv) default=influence.csv")
    parser.add_argument("-o", "--output", default="influence_report.html",
                        help="path to output html file (html) default=influence_report.html")
    parser.add_argument("--top", type=int, default=None,
                        help="how many of the most harmful and of the most helpful samples to show (int) default=24")


def _report(args):
    from .report import write_report
    write_report(args.input, args.output, top=args.top)


def add_evaluate_arguments(parser):
    """The arguments of `evaluate`."""
    parser.add_argument("-m", "--model", default="results.nnp", help="path to model nnp file (model) default=results.nnp")
    parser.add_argument("-t", "--input-train", "--input_train", dest="input_train", required=True,
                        help="path to training dataset csv file (csv)")
    parser.add_argument("-v", "--input-val", "--input_val", dest="input_val", default=None,
                        help="path to validation dataset csv file, for sgd-influence (csv); if empty, the model's")
    parser.add_argument("--input-test", "--input_test", dest="input_test", required=True,
                        help="path to test dataset csv file, used only to measure accuracy (csv)")
    parser.add_argument("-o", "--output", default="evaluation",
                        help="output folder for the tables and the plot (folder) default=evaluation")
    parser.add_argument("-k", "--remove", nargs="+", default=["1%", "2.5%", "5%", "10%"],
                        help="how many rows to remove: counts or percentages (text) default=1%% 2.5%% 5%% 10%%")
    parser.add_argument("-r", "--rankings", nargs="+", default=[DEFAULT_RANKING_NAME, "sgd-influence"],
                        help=f"rankings to compare, random is always added (text) default={DEFAULT_RANKING_NAME} sgd-influence")
    parser.add_argument("--seeds", type=int, default=3, help="retrainings per point, with seeds 0, 1, ... (int) default=3")
    parser.add_argument("-e", "--epochs", type=int, default=None, help="training epochs (int) default=the model's")
    parser.add_argument("-bs", "--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
                        help="training batch size (int) default=the model's")
    parser.add_argument("--mode", choices=("final", "all"), default="final", help="mode of sgd-influence default=final")
    parser.add_argument("-nt", "--n-trials", "--n_trials", dest="n_trials", type=int, default=1,
                        help="trials of each ranking's scoring (int) default=1")
    parser.add_argument("--context", choices=("cpu", "cudnn"), default="cpu", help="nnabla context default=cpu")


def _evaluate(args):
    from .evaluate import EvaluateOptions, evaluate
    evaluate(EvaluateOptions(
        model=args.model, input_train=args.input_train, input_val=args.input_val, input_test=args.input_test,
        output_dir=args.output, remove=args.remove, rankings=args.rankings, seeds=args.seeds, epochs=args.epochs,
        batch_size=args.batch_size, mode=args.mode, n_trials=args.n_trials, context=args.context))


def build_parser():
    parser = argparse.ArgumentParser(prog="nnc-cleanse", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.required = True
    score_parser = commands.add_parser(
        "score", help="train as the model says and score every training sample",
        description="Re-train the model as its training configuration says, then write the training CSV with an "
                    "'influence' column (lower: more harmful) and a 'datasource_index' column, most harmful first.")
    add_score_arguments(score_parser)
    score_parser.set_defaults(run=_score)
    cleanse_parser = commands.add_parser(
        "cleanse", help="write the training CSV without its most harmful rows",
        description="From a scored CSV, write the training CSV without the most harmful rows (same header and "
                    "columns, original row order, paths still resolving), ready to train with.")
    add_cleanse_arguments(cleanse_parser)
    cleanse_parser.set_defaults(run=_cleanse)
    report_parser = commands.add_parser(
        "report", help="write an HTML report of a scored CSV",
        description="Write one self-contained HTML file with the most harmful and most helpful samples as "
                    "thumbnails, the distribution of the scores and the run's summary.")
    add_report_arguments(report_parser)
    report_parser.set_defaults(run=_report)
    evaluate_parser = commands.add_parser(
        "evaluate", help="measure whether removing the most harmful rows helps (remove and retrain)",
        description="For each ranking, remove the k most harmful rows, retrain with the project's configuration over "
                    "several seeds, and compare the test accuracy with removing k random rows and with removing "
                    "nothing. Writes a CSV table, a summary and a PNG plot.")
    add_evaluate_arguments(evaluate_parser)
    evaluate_parser.set_defaults(run=_evaluate)
    return parser


def run_safely(action, *args):
    """Run `action`; turn user errors and Ctrl-C into one sentence and an exit status."""
    from .log import quiet_nnabla
    quiet_nnabla()
    try:
        action(*args)
    except UserError as error:
        print(f"nnc-cleanse: error: {error}", file=sys.stderr)
        return 2
    except InterruptedAfterWriting:
        print("nnc-cleanse: interrupted after the outputs were written completely.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("nnc-cleanse: interrupted; no output was written (a finished training stays cached for the next run).",
              file=sys.stderr)
        return 130
    except MemoryError:
        print("nnc-cleanse: error: out of memory; use a smaller --batch-size or fewer samples.", file=sys.stderr)
        return 2
    except Exception as error:  # a bug, or an input no check foresaw: still one sentence, no traceback
        if os.environ.get("NNC_CLEANSE_TRACEBACK"):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"nnc-cleanse: internal error: {type(error).__name__}{': ' + reason if reason else ''}; "
              "please report it with the command you ran (set NNC_CLEANSE_TRACEBACK=1 to see where it "
              "happened).", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_safely(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
