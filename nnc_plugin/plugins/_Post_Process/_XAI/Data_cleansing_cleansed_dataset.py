"""Neural Network Console plugin: write the training CSV without its most harmful rows (nnc-cleanse).

Copy this file into NNC's plugins folder (libs/plugins/_Post_Process/_XAI/); see docs/plugin.md.
It reads the scored CSV that Data_cleansing_score wrote and writes a training CSV with the same
header and columns, in the original row order, without the removed rows. Set that CSV as the
Training dataset of the project and train again. The script only parses arguments and calls the
`nnc_plugin` package.
"""
import argparse
import os
import sys

DESCRIPTION = """Data Cleansing: write the training data without its most harmful rows

Writes the training CSV without the most harmful rows of a scored CSV (nnc-cleanse; the output of
Data_cleansing_score): the given number or percentage of rows with the lowest score
(column 'influence'), or, when a threshold is given, every row whose score is below it, or,
when a group is given, the rows of that group of harmful rows the report shows.
The result keeps the header, the columns and the row order; train on it as it is.

"Data Cleansing for Models Trained with SGD"
  Satoshi Hara, Atsushi Nitanda, Takanori Maehara (NeurIPS 2019)
https://papers.nips.cc/paper/2019/hash/5f14615696649541a025d3d0f8e0447f-Abstract.html
"""
DEFAULT_REMOVE = "5%"


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
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
    if package:
        from nnc_plugin.options import CleanseOptions, add_arguments
        add_arguments(parser, CleanseOptions, defaults={"remove": DEFAULT_REMOVE})
    else:  # NNC builds the dialog from -h even before the package is set up: the fields of options.CleanseOptions
        add = parser.add_argument
        add("-i", "--input", default="influence.csv",
            help="path to scored csv file written by score (csv) default=influence.csv")
        add("-o", "--output", default="train_cleansed.csv",
            help="path to output cleansed training csv file (csv) default=train_cleansed.csv")
        add("-k", "--remove", default=DEFAULT_REMOVE,
            help="number of most harmful rows to remove, or a percentage such as 5%% (text) default=5%%")
        add("-th", "--threshold", type=float, default=None,
            help="instead, remove every row whose score (influence column) is below this value (float)")
        add("-g", "--group", type=int, default=None,
            help="instead, remove all the rows of this group of harmful rows that act together, clean rows of its "
                 "class among them (the report lists the "
                 "groups, numbered from 1) (int)")
    return parser


def run(args):
    from nnc_plugin.outputs.cleanse import cleanse
    from nnc_plugin.log import info

    remove, threshold = args.remove, args.threshold
    # NNC always passes the prefilled --remove: a group, or else a threshold, replaces it
    if args.group is not None:
        remove, threshold = None, None
        info(f"Removing the rows of group {args.group} (the group replaces --remove and --threshold).")
    elif threshold is not None:
        remove = None
        info(f"Removing every row whose influence is below {threshold:g} (the threshold replaces --remove).")
    cleanse(args.input, args.output, remove=remove, threshold=threshold, group=args.group)


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
