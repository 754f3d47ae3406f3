"""`nnc-cleanse`: the command line. It parses arguments and calls the package, nothing more."""
import argparse
import sys

from .errors import UserError

DESCRIPTION = (
    "Find harmful training samples of a Neural Network Console classifier by SGD-influence "
    "(Hara, Nitanda, Maehara, NeurIPS 2019), in its storage-efficient form "
    "(Suzuki, Kobayashi, Narihira, arXiv 2103.11807).")


def add_score_arguments(parser, hide_advanced=False):
    """The arguments of `score`, shared with the NNC plugin script (which hides the advanced ones)."""
    advanced = (lambda text: argparse.SUPPRESS) if hide_advanced else (lambda text: text)
    parser.add_argument("-m", "--model", default="results.nnp",
                        help="path to model nnp file (model) default=results.nnp; a .nntxt or an NNC results folder also works")
    parser.add_argument("-t", "--input-train", "--input_train", dest="input_train", default=None,
                        help="path to training dataset csv file (csv) default=the model's training dataset")
    parser.add_argument("-v", "--input-val", "--input_val", dest="input_val", default=None,
                        help="path to validation dataset csv file (csv) default=the model's validation dataset")
    parser.add_argument("-o", "--output", default="influence.csv",
                        help="path to output csv file (csv) default=influence.csv")
    parser.add_argument("-nt", "--n-trials", "--n_trials", dest="n_trials", type=int, default=None,
                        help="number of trials (train + score with another seed), averaged (int) default=1")
    parser.add_argument("-s", "--seed", type=int, default=0,
                        help="random seed of the first trial (int) default=0")
    parser.add_argument("-bs", "--batch-size", "--batch_size", dest="batch_size", type=int, default=None,
                        help="training batch size (int) default=the model's batch size")
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
        mode=args.mode, n_trials=args.n_trials if args.n_trials is not None else DEFAULT_TRIALS,
        seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, trace_epochs=args.trace_epochs,
        cache_dir=args.cache_dir, context=args.context, reference=args.reference)


def _score(args):
    from .pipeline import score
    score(score_options_from(args))


def build_parser():
    parser = argparse.ArgumentParser(prog="nnc-cleanse", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.required = True
    score_parser = commands.add_parser(
        "score", help="train as the model says and score every training sample",
        description="Re-train the model as its training configuration says, then write the training CSV with an "
                    "'influence' column (negative: harmful) and a 'datasource_index' column, most harmful first.")
    add_score_arguments(score_parser)
    score_parser.set_defaults(run=_score)
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
    except KeyboardInterrupt:
        print("nnc-cleanse: interrupted; no output was written (a finished training stays cached for the next run).",
              file=sys.stderr)
        return 130
    except MemoryError:
        print("nnc-cleanse: error: out of memory; use a smaller --batch-size or fewer samples.", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_safely(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
