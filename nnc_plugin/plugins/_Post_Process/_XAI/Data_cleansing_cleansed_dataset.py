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

DESCRIPTION = """Data cleansing: write the cleansed dataset (nnc-cleanse)

Writes the training CSV without the most harmful rows of a scored CSV (the output of
Data_cleansing_score): the given number or percentage of rows with the lowest score
(column 'influence'), or, when a threshold is given, every row whose score is below it.
The result keeps the header, the columns and the row order; train on it as it is.

"Data Cleansing for Models Trained with SGD"
  Satoshi Hara, Atsushi Nitanda, Takanori Maehara (NeurIPS 2019)
https://papers.nips.cc/paper/2019/hash/5f14615696649541a025d3d0f8e0447f-Abstract.html
"""
DEFAULT_REMOVE = "5%"


def import_package():
    """Make `nnc_plugin` importable: installed in this Python, in NNC_CLEANSE_HOME, or above this script."""
    try:
        import nnc_plugin  # noqa: F401
        return
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
            return
    sys.stderr.write("nnc-cleanse: error: the nnc_plugin package is not installed in the Python that runs this "
                     f"plugin ({sys.executable}); install it there or set NNC_CLEANSE_HOME to the nnc-cleanse "
                     "folder, as docs/plugin.md says.\n")
    sys.exit(2)


def build_parser():
    from nnc_plugin.options import CleanseOptions, add_arguments
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(parser, CleanseOptions, defaults={"remove": DEFAULT_REMOVE})
    return parser


def run(args):
    from nnc_plugin.outputs.cleanse import cleanse
    from nnc_plugin.log import info

    remove = args.remove
    if args.threshold is not None:  # NNC always passes the prefilled --remove; a threshold replaces it
        remove = None
        info(f"Removing every row whose influence is below {args.threshold:g} (the threshold replaces --remove).")
    cleanse(args.input, args.output, remove=remove, threshold=args.threshold)


def main(argv=None):
    import_package()
    from nnc_plugin.cli import run_safely
    args = build_parser().parse_args(argv)
    return run_safely(run, args)


if __name__ == "__main__":
    sys.exit(main())
