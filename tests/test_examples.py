"""The examples in the public verbs' docstrings run, from the repository folder, as a reader would run them."""
import doctest
import os

import pytest

import nnc_plugin.evaluate
import nnc_plugin.options
import nnc_plugin.outputs.cleanse
import nnc_plugin.pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module", [nnc_plugin.options, nnc_plugin.pipeline, nnc_plugin.outputs.cleanse,
                                    nnc_plugin.evaluate], ids=lambda m: m.__name__)
def test_docstring_examples_run(module, sample_data, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
