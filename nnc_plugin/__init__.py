"""Data cleansing for Neural Network Console projects by SGD-influence.

The stages, in the order data flows through them:
project (model file) -> dataset (NNC CSV) -> trainer (cache) -> influence/rankings -> output.
`pipeline` runs them; `cli` and the NNC plugin scripts only parse arguments.
"""

__version__ = "0.1.0"
