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

DESCRIPTION = """Data cleansing: score every training sample (nnc-cleanse)

Re-trains the model as its training configuration says, then scores every training sample;
the lower the score, the more harmful the sample. Writes the training CSV with 'influence'
(the score) and 'datasource_index' columns, most harmful first, and an HTML report.
Rankings (-r): {rankings}; the default is {default}.
sgd-influence is SGD influence on the validation loss, as in

"Data Cleansing for Models Trained with SGD"
  Satoshi Hara, Atsushi Nitanda, Takanori Maehara (NeurIPS 2019)
https://papers.nips.cc/paper/2019/hash/5f14615696649541a025d3d0f8e0447f-Abstract.html
"Data Cleansing for Deep Neural Networks with Storage-efficient Approximation of Influence Functions"
  Kenji Suzuki, Yoshiyuki Kobayashi, Takuya Narihira (2021)
https://arxiv.org/abs/2103.11807
"""


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
    from nnc_plugin.options import ScoreOptions, add_arguments
    from nnc_plugin.scores import DEFAULT_RANKING, names
    description = DESCRIPTION.format(rankings=", ".join(names()), default=DEFAULT_RANKING)
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(parser, ScoreOptions, hide_advanced=True)
    parser.add_argument("-rp", "--report", default="influence_report.html",
                        help="path to output html report file (html) default=influence_report.html")
    return parser


def run(args):
    from nnc_plugin.log import info
    from nnc_plugin.options import ScoreOptions, from_args
    from nnc_plugin.outputs.output import check_writable
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
    import_package()
    from nnc_plugin.cli import run_safely
    args = build_parser().parse_args(argv)
    return run_safely(run, args)


if __name__ == "__main__":
    sys.exit(main())
