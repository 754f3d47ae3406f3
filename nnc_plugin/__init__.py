"""Data cleansing for Neural Network Console projects by SGD-influence.

The subpackages are the stages, in the order data flows through them:
  model/     the model file (project.py) and the graphs built from it (network.py, fast_rules.py)
  data/      NNC dataset CSVs (dataset.py) and whether they fit the network (checks.py)
  training/  replaying the training (trainer.py), the solver's step sizes (step_size.py), the cache
             (cache.py, the only module that names its files) and the `Trial` a ranking scores (trial.py)
  scores/    the rankings, one registered class each (registry.py), and the influence math (influence.py)
  outputs/   the scored CSV and run summary (output.py), the cleansed CSV (cleanse.py), the report (report.py)
`pipeline.score` and `evaluate.evaluate` sequence them; `options` declares every option once;
`cli` and the NNC plugin scripts only parse arguments.
"""

__version__ = "0.1.0"

import logging as _logging

# nnabla logs "Initializing CPU extension..." at INFO when it is first imported; our users read the
# console (NNC shows level-99 lines), so keep nnabla's own chatter below WARNING out of it.
_logging.getLogger("nnabla").setLevel(_logging.WARNING)
