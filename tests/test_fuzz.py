"""Generated bad inputs for the CSV reader, the model loader and the graph builder: only a UserError may come out.

hypothesis writes broken dataset CSVs (random headers, rows, cells, quoting, encodings, missing
or damaged files) and broken model files (random bytes, truncated or corrupted zips, mangled
nntxt); `read_dataset` and `load_project` must either succeed or raise `UserError`, never another
exception (which the command line would show as an internal error). It also edits small networks
written as NNC writes them (tests/nnc_style.py) and builds and runs their graphs under an alarm:
the graph or one sentence, never a hang or a crash.
"""
import csv
import io
import os
import shutil
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnc_plugin.data.dataset import read_dataset
from nnc_plugin.errors import UserError
from nnc_plugin.model.project import load_project

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# CSVs -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resources(tmp_path_factory, sample_data):
    """A folder of files a CSV may name: good and damaged images, arrays and matrices."""
    folder = tmp_path_factory.mktemp("fuzz_csv")
    shutil.copy(os.path.join(sample_data, "digits", "data", "images", "00000.png"), folder / "good.png")
    shutil.copy(os.path.join(sample_data, "mnist", "data", "images", "00000.png"), folder / "big.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR garbage")
    (folder / "empty.jpg").write_bytes(b"")
    np.save(folder / "good.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    np.save(folder / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "text.npy").write_bytes(b"not numpy at all")
    (folder / "matrix.csv").write_text("1,2,3\n4,5,6\n")
    (folder / "ragged.csv").write_text("1,2\n3\nx,y\n")
    (folder / "folder.png").mkdir()
    return folder


FILES = ["good.png", "big.png", "corrupt.png", "empty.jpg", "good.npy", "object.npy", "text.npy", "matrix.csv",
         "ragged.csv", "folder.png", "missing.png", "sub/missing.npy", "..", "/", "C:\\x.png", "good.png\x00"]
HEADER_CELLS = ["x:image", "y:label", "x", "y", "x__0", "x__1:a", "#comment", "", ":", "__", "1", "nan", "a:b:c",
                "y:label ", " x:image", "x:image\n"]
cell = st.one_of(
    st.sampled_from(FILES),
    st.integers(-10 ** 30, 10 ** 30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "-inf", "1e400", "0x10", "1,5", '"', "'", "\\", "\r", "\n", "\t"]),
    st.text(max_size=12),
)
header = st.lists(st.one_of(st.sampled_from(HEADER_CELLS), st.text(max_size=8)), min_size=0, max_size=4)
rows = st.lists(st.lists(cell, min_size=0, max_size=5), min_size=0, max_size=6)


def _csv_bytes(draw_header, draw_rows, quoting, encoding):
    if quoting == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([draw_header] + draw_rows)
        text = buffer.getvalue()
    else:  # joined by hand: quotes and separators inside cells break the structure
        text = "\n".join(",".join(row) for row in [draw_header] + draw_rows)
    if encoding == "latin-1":
        return text.encode("latin-1", errors="replace")
    return text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf") else "strict")


def _read_only_user_errors(path):
    try:
        read_dataset(str(path))
    except UserError as error:
        assert str(error) and "\n" not in str(error).strip()


@FUZZ
@given(draw_header=header, draw_rows=rows, quoting=st.sampled_from(["csv", "raw"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
def test_generated_csvs_raise_only_user_errors(resources, draw_header, draw_rows, quoting, encoding):
    try:
        data = _csv_bytes(draw_header, draw_rows, quoting, encoding)
    except (UnicodeEncodeError, csv.Error):  # text this encoding or the csv module cannot write
        data = b"\xff\xfe\xfd"
    path = resources / "generated.csv"
    path.write_bytes(data)
    _read_only_user_errors(path)


@FUZZ
@given(prefix=st.sampled_from([b"", b"x:image,y:label\n", b"x,y\n", b"\xef\xbb\xbfx:image,y:label\r\n"]),
       body=st.binary(max_size=200))
def test_random_bytes_as_csv_raise_only_user_errors(resources, prefix, body):
    path = resources / "bytes.csv"
    path.write_bytes(prefix + body)
    _read_only_user_errors(path)


@FUZZ
@given(count=st.integers(1, 4), choices=st.lists(st.sampled_from(FILES), min_size=1, max_size=4),
       labels=st.lists(st.sampled_from(["0", "3", "-1", "nan", "", "x", "1e400", "2.5"]), min_size=1, max_size=4))
def test_well_formed_csvs_naming_bad_files_raise_only_user_errors(resources, count, choices, labels):
    lines = ["x:image,y:label"] + [f"{choices[i % len(choices)]},{labels[i % len(labels)]}" for i in range(count)]
    path = resources / "files.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    _read_only_user_errors(path)


# Model files ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_texts(sample_data):
    with open(os.path.join(sample_data, "digits", "digits_mlp.nntxt"), encoding="utf-8") as f:
        digits = f.read()
    with open(os.path.join(sample_data, "mnist", "mnist_cnn.nntxt"), encoding="utf-8") as f:
        mnist = f.read()
    return [digits, mnist]


def _nnp_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def _load_only_user_errors(data, extension):
    folder = tempfile.mkdtemp(prefix="nnc_fuzz_")
    try:
        path = os.path.join(folder, "model" + extension)
        with open(path, "wb") as f:
            f.write(data)
        try:
            load_project(path)
        except UserError as error:
            assert str(error) and "\n" not in str(error).strip()
        assert os.listdir(folder) == ["model" + extension], "loading must not write beside the model"
    finally:
        shutil.rmtree(folder)


mutation = st.tuples(st.sampled_from(["delete", "duplicate", "replace", "number"]),
                     st.floats(0, 1), st.floats(0, 1), st.text(max_size=20))


def _mangle(text, mutations):
    for kind, start, length, insert in mutations:
        a = int(start * len(text))
        b = min(len(text), a + int(length * 200))
        if kind == "delete":
            text = text[:a] + text[b:]
        elif kind == "duplicate":
            text = text[:b] + text[a:b] + text[b:]
        elif kind == "replace":
            text = text[:a] + insert + text[b:]
        else:  # a number changed: shapes, epochs, learning rates, batch sizes
            digits = [i for i, c in enumerate(text) if c.isdigit()]
            if digits:
                i = digits[int(start * (len(digits) - 1))]
                text = text[:i] + str(int(length * 40) - 20) + text[i + 1:]
    return text


@FUZZ
@given(which=st.integers(0, 1), mutations=st.lists(mutation, min_size=1, max_size=4),
       as_nnp=st.booleans())
def test_mangled_nntxt_raises_only_user_errors(model_texts, which, mutations, as_nnp):
    text = _mangle(model_texts[which], mutations)
    data = text.encode("utf-8", errors="surrogatepass")
    if as_nnp:
        _load_only_user_errors(_nnp_bytes([("nnp_version.txt", b"0.1\n"), ("network.nntxt", data)]), ".nnp")
    else:
        _load_only_user_errors(data, ".nntxt")


@FUZZ
@given(data=st.binary(max_size=400), extension=st.sampled_from([".nnp", ".nntxt"]))
def test_random_bytes_as_model_raise_only_user_errors(data, extension):
    _load_only_user_errors(data, extension)


@FUZZ
@given(which=st.integers(0, 1), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                                     max_size=4))
def test_truncated_or_corrupted_nnp_raises_only_user_errors(model_texts, which, cut, flips):
    data = bytearray(_nnp_bytes([("nnp_version.txt", b"0.1\n"), ("network.nntxt", model_texts[which].encode())]))
    for position, value in flips:
        data[int(position * (len(data) - 1))] = value
    data = bytes(data[:max(1, int(cut * len(data)))]) if cut < 0.95 else bytes(data)
    _load_only_user_errors(data, ".nnp")


member_name = st.one_of(st.sampled_from(["network.nntxt", "net.prototxt", "parameter.h5", "parameter.protobuf",
                                         "../../evil.nntxt", "/abs/evil.nntxt", "dir/", "nnp_version.txt"]),
                        st.text(min_size=1, max_size=12))


@pytest.mark.filterwarnings("ignore:Duplicate name")
@FUZZ
@given(members=st.lists(st.tuples(member_name, st.binary(max_size=100)), max_size=4), with_network=st.booleans())
def test_zips_with_odd_members_raise_only_user_errors(model_texts, members, with_network):
    if with_network:
        members = [("network.nntxt", model_texts[0].encode())] + members
    try:
        data = _nnp_bytes(members)
    except (ValueError, UnicodeEncodeError):  # a name zipfile itself refuses to write
        return
    _load_only_user_errors(data, ".nnp")


# Graph building ---------------------------------------------------------------------------------
# Structural edits of small networks written as NNC writes them (a residual Repeat block, an Elman
# network, an auto-encoder, ...): layers rewired, removed or retyped, loops of another length, shapes
# and axes changed. Loading the project and building and running its graphs (what `score` does before
# training) must succeed or raise a UserError, and never spin: every example runs under an alarm.

GRAPH_FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
GRAPH_SECONDS = 60  # far above what one example takes (well under a second); a hang would never end
# (600 random examples of this test also passed once, in about 30 s, when it was written)
LAYER_TYPES = ["Identity", "ReLU", "Tanh", "Affine", "Delay", "RecurrentInput", "RecurrentOutput", "RepeatStart",
               "RepeatEnd", "Concatenate", "Add2", "Softmax", "SquaredError", "Mean"]
edit = st.tuples(st.sampled_from(["rewire", "remove", "retype", "times", "dim", "axis", "loop_id"]),
                 st.floats(0, 1), st.floats(0, 1), st.integers(-2, 9))


def _edit_network(network, kind, a, b, number):
    functions, variables = network.function, network.variable
    if not functions:
        return
    function = functions[int(a * (len(functions) - 1))]
    if kind == "rewire" and function.input:
        function.input[int(b * (len(function.input) - 1))] = variables[int(b * (len(variables) - 1))].name
    elif kind == "remove":
        functions.remove(function)
    elif kind == "retype":
        function.type = LAYER_TYPES[int(b * (len(LAYER_TYPES) - 1))]
    elif kind == "times" and network.repeat_info:
        network.repeat_info[0].times = number
    elif kind == "dim":
        variable = variables[int(b * (len(variables) - 1))]
        if variable.shape.dim:
            variable.shape.dim[int(a * (len(variable.shape.dim) - 1))] = number
    elif kind == "axis" and function.HasField("recurrent_param"):
        function.recurrent_param.axis = number
    elif kind == "loop_id":
        ids = [r.id for r in network.repeat_info] + ["Other"]
        target = function.recurrent_param if function.HasField("recurrent_param") else function.repeat_param
        if function.HasField("recurrent_param") or function.HasField("repeat_param"):
            target.repeat_id = ids[int(b * (len(ids) - 1))]
        elif function.repeat_id:
            function.repeat_id[0] = ids[int(b * (len(ids) - 1))]


class _Spun(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Spun()


@GRAPH_FUZZ
@given(family=st.sampled_from(["residual", "recurrent", "auto_encoder", "deconvolution"]),
       edits=st.lists(edit, min_size=1, max_size=3), both=st.booleans())
def test_edited_networks_build_or_raise_user_errors_in_bounded_time(sample_data, family, edits, both):
    import signal
    from google.protobuf import text_format
    from nnabla.utils import nnabla_pb2
    from nnc_plugin.scores.differentiability import check_differentiable
    from nnc_style import write_family

    folder = tempfile.mkdtemp(prefix="nnc_graph_fuzz_")
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        model, _, _ = write_family(family, folder, os.path.join(sample_data, "digits"), train_rows=4, val_rows=2)
        proto = nnabla_pb2.NNablaProtoBuf()
        with open(model, encoding="utf-8") as f:
            text_format.Merge(f.read(), proto)
        for kind, a, b, number in edits:
            for network in (proto.network if both else proto.network[:1]):
                _edit_network(network, kind, a, b, number)
        with open(model, "w", encoding="utf-8") as f:
            f.write(text_format.MessageToString(proto))
        signal.alarm(GRAPH_SECONDS)
        try:
            project = load_project(model)
            check_differentiable(project, second_order=False)  # builds and runs the training graph
            check_differentiable(project, second_order=True)  # and the graphs SGD-influence differentiates
        except UserError as error:
            assert str(error) and "\n" not in str(error).strip()
        except _Spun:
            pytest.fail(f"building the graphs of the edited {family} network did not end within {GRAPH_SECONDS} s")
        finally:
            signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(folder)
