"""Data cleansing for Neural Network Console projects by SGD-influence.

The stages, in the order data flows through them:
project (model file) -> dataset (NNC CSV) -> trainer (cache) -> influence/rankings -> output.
`pipeline` runs them; `cli` and the NNC plugin scripts only parse arguments.
"""

__version__ = "0.1.0"

import logging as _logging

# nnabla logs "Initializing CPU extension..." at INFO when it is first imported; our users read the
# console (NNC shows level-99 lines), so keep nnabla's own chatter below WARNING out of it.
_logging.getLogger("nnabla").setLevel(_logging.WARNING)
