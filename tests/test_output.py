"""The scored CSV: NNC conventions, relocated paths, atomic writes."""
import os
import signal

import numpy as np
import pytest

from nnc_plugin.data.dataset import Dataset
from nnc_plugin.files import write_atomically
from nnc_plugin.data.dataset import relocate_path
from nnc_plugin.files import interrupts_held
from nnc_plugin.outputs.scored_csv import write_scored_csv


def test_relocated_paths_resolve_from_the_new_folder(tmp_path):
    assert relocate_path("images/a.png", "/data/set", "/data/out") == "../set/images/a.png"
    assert relocate_path("images\\a.png", "/data/set", "/data") == "set\\images\\a.png"
    assert relocate_path("3", "/data/set", "/elsewhere") == "3"
    assert relocate_path("/abs/a.png", "/data/set", "/elsewhere") == "/abs/a.png"


def test_scored_csv_sorts_ascending_with_ties_by_row(tmp_path):
    data = Dataset(path=str(tmp_path / "train.csv"), header=["x:image", "y:label"],
                   rows=[["a.png", "1"], ["b.png", "2"], ["c.png", "3"]], newline="\r\n", arrays={})
    write_scored_csv(str(tmp_path / "out.csv"), data, np.array([0.5, -1.0, 0.5]))
    text = (tmp_path / "out.csv").read_bytes().decode()
    assert text.split("\r\n")[:4] == ["x:image,y:label,influence,datasource_index",
                                      "b.png,2,-1,1", "a.png,1,0.5,0", "c.png,3,0.5,2"]


def test_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(TypeError):  # fails half-way: after the temporary file is made
        write_atomically(str(target), object())
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_ctrl_c_while_writing_a_pair_of_files_waits_for_both(tmp_path):
    before = signal.getsignal(signal.SIGINT)  # Python's own handler; SIG_IGN in a run started in the background
    written = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            write_atomically(str(tmp_path / "a.csv"), "a\n")
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the two writes
            write_atomically(str(tmp_path / "a.csv.summary.json"), "{}\n")
            written.append("both")
    assert written == ["both"] and sorted(os.listdir(tmp_path)) == ["a.csv", "a.csv.summary.json"]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
