"""`nnc-cleanse`: the command line. It parses arguments and calls the package, nothing more."""
import argparse
import os
import sys
import time

from .errors import InterruptedAfterWriting, UserError
from .options import CleanseOptions, EvaluateOptions, ReportOptions, ScoreOptions, add_arguments, from_args

DESCRIPTION = (
    "Find harmful training samples (mislabeled or otherwise) of a Neural Network Console classifier: re-train it "
    "as its configuration says and rank every training row, by its loss during training (the default) or by "
    "SGD-influence (Hara, Nitanda, Maehara, NeurIPS 2019) in its storage-efficient form "
    "(Suzuki, Kobayashi, Narihira, arXiv 2103.11807).")


def _score(args):
    from .pipeline import score
    score(from_args(ScoreOptions, args))


def _cleanse(args):
    from .outputs.cleanse import cleanse
    cleanse(args.input, args.output, remove=args.remove, threshold=args.threshold, group=args.group)


def _report(args):
    from .outputs.report import write_report
    write_report(args.input, args.output, top=args.top)


def _evaluate(args):
    from .evaluate import evaluate
    evaluate(from_args(EvaluateOptions, args))


COMMANDS = [  # (name, options, action, help, description)
    ("score", ScoreOptions, _score, "train as the model says and score every training sample",
     "Re-train the model as its training configuration says, then write the training CSV with an "
     "'influence' column (lower: more harmful) and a 'datasource_index' column, most harmful first."),
    ("cleanse", CleanseOptions, _cleanse, "write the training CSV without its most harmful rows",
     "From a scored CSV, write the training CSV without the most harmful rows (same header and "
     "columns, original row order, paths still resolving), ready to train with."),
    ("report", ReportOptions, _report, "write an HTML report of a scored CSV",
     "Write one self-contained HTML file with the most harmful and most helpful samples as "
     "thumbnails, the distribution of the scores and the run's summary."),
    ("evaluate", EvaluateOptions, _evaluate, "measure whether removing the most harmful rows helps (remove and retrain)",
     "For each ranking, remove the k most harmful rows, retrain with the project's configuration over "
     "several seeds, and compare the test accuracy with removing k random rows and with removing "
     "nothing. Writes a CSV table, a summary and a PNG plot."),
]


def build_parser():
    parser = argparse.ArgumentParser(prog="nnc-cleanse", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.required = True
    for name, options_class, action, help_text, description in COMMANDS:
        command = commands.add_parser(name, help=help_text, description=description)
        add_arguments(command, options_class)
        command.set_defaults(run=action)
    return parser


def run_safely(action, *args):
    """Run `action`; turn user errors and Ctrl-C into one sentence and an exit status.

    In a run of several processes (mpiexec), a process that fails says why and stops the others, so the run
    ends at once with no output written."""
    from .log import quiet_nnabla
    from .parallel import world
    quiet_nnabla()
    try:
        world()  # first: under mpiexec, every failure below can then stop the other processes
        action(*args)
    except Exception as error:  # a bug, or an input no check foresaw: still one sentence, no traceback
        if os.environ.get("NNC_CLEANSE_TRACEBACK") and not isinstance(error, (UserError, MemoryError)):
            raise
        return _stop(*_sentence(error))
    except InterruptedAfterWriting:
        return _stop("nnc-cleanse: interrupted after the outputs were written completely.", 130)
    except KeyboardInterrupt:
        return _stop("nnc-cleanse: interrupted; no output was written (a finished training stays cached for the next "
                     "run).", 130)
    return 0


def _sentence(error):
    """(message, exit status) for an exception."""
    if isinstance(error, UserError):
        return f"nnc-cleanse: error: {error}", 2
    if isinstance(error, MemoryError):
        return "nnc-cleanse: error: out of memory; use a smaller --batch-size or fewer samples.", 2
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return (f"nnc-cleanse: internal error: {type(error).__name__}{': ' + reason if reason else ''}; "
            "please report it with the command you ran (set NNC_CLEANSE_TRACEBACK=1 to see where it happened).", 1)


def _stop(message, status):
    """Print `message`; in a run of several processes, end the others too (process 0 speaks first)."""
    from .parallel import world_if_made
    comm = world_if_made()
    if comm is not None and comm.size > 1 and comm.rank > 0:
        time.sleep(2.0)  # when every process fails alike, process 0's abort arrives first: one sentence, not K
    print(message, file=sys.stderr, flush=True)
    if comm is not None and comm.size > 1:
        # mpiexec forwards each process's stderr through its own pipes, and the abort ends them all: without
        # the pause the sentence was lost in 2 of 12 runs on a busy machine
        time.sleep(0.5)
        comm.abort(status)
    return status


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_safely(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
