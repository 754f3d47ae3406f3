"""The model file on disk: finding it, parsing it, and nnabla's own loader.

A model file is NNC's `results.nnp` (a zip holding `network.nntxt` and the trained parameters), a bare
`.nntxt`, or the results folder that holds one. It is parsed in memory as nnabla parses it, and loaded by
nnabla's own loader (`nnabla.utils.load.load`), whose solvers and schedulers the project then uses.
"""
import contextlib
import os
import zipfile
import zlib
from collections import OrderedDict

import nnabla as nn
from google.protobuf import text_format
from nnabla.utils import nnabla_pb2

from ..errors import UserError, first_line

MODEL_EXTENSIONS = (".nnp", ".nntxt", ".prototxt")

# What Neural Network Console and `nnabla_cli train` leave in a results folder, best first.
RESULT_FOLDER_FILES = ("results.nnp", "network.nntxt", "net.nntxt")


def resolve_model_path(path):
    """Return the model file to read: `path` itself, or the model file inside a results folder."""
    if os.path.isdir(path):
        for name in RESULT_FOLDER_FILES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise UserError(
            f"The folder {path} holds no model file ({', '.join(RESULT_FOLDER_FILES)}); "
            "pass the results.nnp that Neural Network Console wrote, or its folder.")
    if not os.path.isfile(path):
        raise UserError(f"The model file {path} does not exist; pass the path of a .nnp or .nntxt file.")
    if os.path.splitext(path)[1].lower() not in MODEL_EXTENSIONS:
        raise UserError(
            f"The model file {path} is not a .nnp or .nntxt file; "
            "pass the results.nnp that Neural Network Console wrote.")
    return path


def read_proto(path):
    """Return the model file's proto, parsed in memory; refuse files nnabla's loader would choke on.

    An NNP is read as nnabla reads it: its .nntxt/.prototxt members are parsed from the zip in
    memory (nothing is extracted, so no member name can write outside a temporary folder).
    """
    proto = nnabla_pb2.NNablaProtoBuf()
    if path.lower().endswith(".nnp"):
        if not zipfile.is_zipfile(path):
            raise UserError(f"The model file {path} is not an NNP file (not a zip archive); "
                            "pass the results.nnp that Neural Network Console wrote.")
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                bad = archive.testzip()
                texts = [(n, archive.read(n)) for n in names if n.lower().endswith((".nntxt", ".prototxt"))]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, EOFError, NotImplementedError,
                ValueError, zlib.error) as error:
            raise UserError(f"The model file {path} is a damaged zip archive ({first_line(error)}); "
                            "export it again from Neural Network Console.")
        if bad is not None:
            raise UserError(f"The model file {path} is a damaged zip archive (member {bad} is corrupt); export it again.")
        if not texts:
            raise UserError(f"The model file {path} is a zip archive without a network definition (.nntxt); "
                            "it is not an NNP file, so pass the results.nnp that Neural Network Console wrote.")
        for name, data in texts:
            _parse_text(proto, data, f"The network definition {name} inside the model file {path}")
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            raise UserError(f"The model file {path} cannot be read ({error.strerror}); check the path and its permissions.")
        _parse_text(proto, data, f"The model file {path}")
    return proto


def _parse_text(proto, data, what):
    try:
        text_format.Merge(data.decode("utf-8-sig"), proto)
    except UnicodeDecodeError:
        raise UserError(f"{what} is not UTF-8 text, so it is not an nntxt network definition; "
                        "export the project again from Neural Network Console.")
    except Exception as error:  # text_format.ParseError and protobuf's other complaints about bad text
        raise UserError(f"{what} could not be parsed as nntxt ({first_line(error)}); "
                        "export it again from Neural Network Console.")


@contextlib.contextmanager
def nnabla_quiet():
    """Silence nnabla's logger (it logs the context, and CRITICAL lines before it raises) while it loads."""
    from nnabla.logger import logger
    level = logger.level
    logger.setLevel(100)  # above every level nnabla uses, 99 included
    try:
        yield
    finally:
        logger.setLevel(level)


def nnabla_load(path, context):
    """Run nnabla's own loader in a private parameter scope; return its `info` object."""
    from nnabla.utils.load import load
    scope = OrderedDict()
    try:
        with nn.parameter_scope("", scope), nnabla_quiet():
            return load([path], prepare_data_iterator=False, exclude_parameter=True,
                        batch_size=1, context=context)
    except UserError:
        raise
    except Exception as error:  # nnabla raises many types; all mean "this model cannot be used"
        reason = first_line(error)
        raise UserError(f"nnabla could not load the model file {path} ({reason}); "
                        "check that it was written by Neural Network Console or nnabla.")


def has_stored_parameters(path, proto):
    if proto.parameter:
        return True
    if path.lower().endswith(".nnp"):
        with zipfile.ZipFile(path) as archive:
            return any(os.path.basename(n).startswith("parameter") for n in archive.namelist())
    return False


def resolve_uri(uri, model_path):
    if not uri:
        return ""
    if "://" in uri:
        return uri
    if os.path.isabs(uri):
        return uri
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(model_path)), uri))


def network_proto(proto, name):
    """The network of `proto` named `name` (None when there is none)."""
    for network in proto.network:
        if network.name == name:
            return network
    return None


def variable_names(network_proto):
    """The names of every variable a network proto declares."""
    return {v.name for v in network_proto.variable}


def read_trained_parameters(path, context="cpu"):
    """{parameter name: array} stored in the model file `path` (what NNC trained), read by nnabla's own loader."""
    scope = OrderedDict()
    with nn.parameter_scope("", scope), nnabla_quiet():
        from nnabla.utils.load import load
        load([path], prepare_data_iterator=False, exclude_parameter=False, batch_size=1, context=context)
        return OrderedDict((name, v.d.copy()) for name, v in nn.get_parameters(grad_only=False).items())
