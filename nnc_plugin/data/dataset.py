"""Neural Network Console dataset CSVs: the one module that knows their conventions.

A dataset CSV has a header of `name[__index][:label]` cells (for example `x:image,y:label`)
and one row per sample. A cell is a number, or a path relative to the CSV's folder to an
image (.png/.jpg/.bmp/...), a .npy array or a .csv matrix. Columns whose name starts with
`#` are comments. Values are decoded by nnabla's own `CsvDataSource`; this module keeps the
raw header and rows too, so the output CSV can repeat them unchanged.
"""
import csv
import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from ..errors import UserError, first_line
from ..log import Progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".dcm")
FILE_EXTENSIONS = IMAGE_EXTENSIONS + (".npy", ".csv", ".wav")


def variable_name(header_cell):
    """The variable a header cell feeds: `x__0:image` -> `x`, `y:label` -> `y`."""
    return header_cell.split(":", 1)[0].split("__", 1)[0].strip()


def display_name(header_cell):
    """How a column is shown to a user: `y:label` -> `label`; `y` -> `y`."""
    name, _, label = header_cell.partition(":")
    return (label or name).strip()


def is_path_cell(cell):
    """True when a CSV cell names a file (relative to the CSV's folder, as NNC resolves it), not a number."""
    try:
        float(cell)
        return False
    except ValueError:
        return os.path.splitext(cell)[1].lower() in FILE_EXTENSIONS


def relocate_path(cell, source_folder, target_folder):
    """Rewrite a path cell of a CSV in `source_folder` so it resolves from `target_folder`."""
    if not is_path_cell(cell) or os.path.isabs(cell.replace("\\", "/")):
        return cell
    absolute = os.path.normpath(os.path.join(source_folder, cell.replace("\\", "/")))
    try:
        relative = os.path.relpath(absolute, target_folder)
    except ValueError:  # another drive on Windows
        return absolute
    if "\\" in cell:
        relative = relative.replace("/", "\\")
    return relative


@dataclass
class Dataset:
    """A dataset CSV read into memory.

    `arrays` maps each variable (the part of a header cell before `__` and `:`) to an array
    with one row per sample, kept in its compact stored type (8-bit images stay uint8);
    `batch` turns a set of rows into the float32 arrays the network reads.
    """
    path: str
    header: List[str]
    rows: List[List[str]]
    newline: str
    arrays: Dict[str, np.ndarray]
    pixel_scale: Dict[str, float] = field(default_factory=dict)  # image variable -> max pixel value
    normalize: bool = True

    def __len__(self):
        return len(self.rows)

    @property
    def variables(self):
        return list(self.arrays)

    def subset(self, indices):
        """A new Dataset with only the rows `indices` (in that order), sharing nothing mutable."""
        indices = np.asarray(indices, dtype=np.int64)
        return Dataset(path=self.path, header=list(self.header), rows=[self.rows[i] for i in indices],
                       newline=self.newline, arrays={k: v[indices] for k, v in self.arrays.items()},
                       pixel_scale=dict(self.pixel_scale), normalize=self.normalize)

    def column_of(self, name):
        """The position in the header of the first column that feeds the variable `name`."""
        return next(i for i, cell in enumerate(self.header) if variable_name(cell) == name)

    def sample_shape(self, name):
        return self.arrays[name].shape[1:]

    def arrays_digest(self):
        """A hex digest of the decoded values: changes whenever any sample or label changes."""
        digest = hashlib.sha256()
        for name in sorted(self.arrays):
            values = np.ascontiguousarray(self.arrays[name])
            digest.update(f"{name}{values.dtype.str}{values.shape}".encode())
            digest.update(values.tobytes())
        return digest.hexdigest()

    def batch(self, indices, shapes):
        """Return {variable: float32 array of shape (len(indices), *shapes[variable])}."""
        out = {}
        for name, shape in shapes.items():
            values = self.arrays[name][indices].astype(np.float32)
            if self.normalize and name in self.pixel_scale:
                values *= np.float32(1.0 / self.pixel_scale[name])
            out[name] = values.reshape((len(indices),) + tuple(shape))
        return out


def read_table(path):
    """The header and rows exactly as written, and the file's line ending."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise UserError(f"The dataset CSV {path} cannot be read ({error.strerror}); check the path.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"The dataset CSV {path} is not UTF-8 text; save it as UTF-8 CSV.")
    newline = "\r\n" if "\r\n" in text[:4096] else "\n"
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        table = [row for row in reader]
    except csv.Error as error:
        raise UserError(f"The dataset CSV {path} is not valid CSV ({error}); check its quoting.")
    table = [row for row in table if row]  # csv gives [] for blank lines
    if not table:
        raise UserError(f"The dataset CSV {path} is empty; it needs a header such as x:image,y:label and one row per sample.")
    return table[0], table[1:], newline


def _check_header(path, header):
    for position, cell in enumerate(header, start=1):
        name = variable_name(cell)
        if not name:
            raise UserError(f"Column {position} of the header of {path} has no variable name ('{cell}'); "
                            "use NNC's form name:label, for example x:image or y:label.")
        try:
            float(name)
        except ValueError:
            continue
        raise UserError(f"The first line of {path} looks like data ('{cell}'), not a header; "
                        "add a header such as x:image,y:label.")
    names = [c.split(":", 1)[0].strip() for c in header]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"The header of {path} names the column '{duplicates[0]}' twice; each column needs its own name.")


def _diagnose_row(path, header, row, row_number, error):
    """Turn a failure to decode a row into a sentence naming the cell."""
    if len(row) != len(header):
        return UserError(f"Row {row_number} of {path} has {len(row)} cells but the header has {len(header)}; "
                         "fix that row.")
    folder = os.path.dirname(os.path.abspath(path))
    for cell, column in zip(row, header):
        try:
            float(cell)
            continue
        except ValueError:
            pass
        if column.startswith("#"):
            continue
        extension = os.path.splitext(cell)[1].lower()
        target = os.path.join(folder, cell.replace("\\", "/"))
        if extension not in FILE_EXTENSIONS:
            return UserError(f"Row {row_number} of {path}, column '{column}': '{cell}' is neither a number nor a "
                             "path to an image, .npy or .csv file; fix the cell, or, if the network does not read "
                             f"that column, rename it '#{column}' (NNC's comment columns) or remove it.")
        if not os.path.isfile(target):
            return UserError(f"Row {row_number} of {path}, column '{column}': the file '{cell}' does not exist "
                             f"(looked for {target}); paths are relative to the CSV's folder.")
    reason = first_line(error)
    files = [(cell, column) for cell, column in zip(row, header)
             if not column.startswith("#") and os.path.splitext(cell)[1].lower() in FILE_EXTENSIONS]
    named = [(cell, column) for cell, column in files if os.path.basename(cell.replace("\\", "/")) in reason]
    if len(named) == 1 or len(files) == 1:
        cell, column = (named or files)[0]
        return UserError(f"Row {row_number} of {path}, column '{column}': the file '{cell}' cannot be read "
                         f"({reason}); replace it with a valid file or remove the row.")
    return UserError(f"Row {row_number} of {path} could not be read ({reason}); check the files it names.")


def _check_arrays(path, header, rows):
    """Refuse .npy files that hold no plain numbers, before nnabla loads them.

    nnabla opens .npy files with pickling allowed: an object array is not data, and unpickling it
    could run code from the file, so its header is read first (numpy's format, no pickle).
    """
    folder = os.path.dirname(path)
    for number, row in enumerate(rows, start=2):
        for cell, column in zip(row, header):
            if column.startswith("#") or not cell.lower().endswith(".npy"):
                continue
            target = os.path.join(folder, cell.replace("\\", "/"))
            try:
                with open(target, "rb") as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)  # 2.0 and 3.0 share the layout
                    dtype = read_header(f)[2]
            except (OSError, ValueError, SyntaxError, TypeError, UnicodeDecodeError):
                continue  # missing or damaged: reported with its row when nnabla reads it
            if dtype.hasobject or dtype.kind not in "biuf":
                raise UserError(f"Row {number} of {path}, column '{column}': the file '{cell}' holds {dtype} values, "
                                "not numbers; save it with numpy.save from a numeric array.")


def _check_finite(path, header, rows, arrays):
    """Refuse NaN or infinite values (a cell such as 'nan' or '1e400', or inside a .npy/.csv file)."""
    for name, values in arrays.items():
        if values.dtype.kind != "f":
            continue
        flat = values.reshape(len(values), -1)
        bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
        if bad.size:
            row = int(bad[0])
            columns = [i for i, c in enumerate(header) if variable_name(c) == name]
            element = int(np.flatnonzero(~np.isfinite(flat[row]))[0])
            position = columns[element] if len(columns) == flat.shape[1] else (columns[0] if columns else None)
            column = header[position] if position is not None else name
            cell = rows[row][position] if position is not None else ""
            raise UserError(f"Row {row + 2} of {path}, column '{column}': the value '{cell}' is not a finite number "
                            "(NaN or infinite); fix or remove that row.")


def read_dataset(path, normalize=True, title=None):
    """Return the `Dataset` in an NNC dataset CSV.

    Parameters
    ----------
    path : str
        The CSV file.
    normalize : bool
        Divide image pixels by their maximum (255 for 8-bit images), as NNC does unless the
        dataset says "no image normalization".
    """
    from nnabla.utils.data_source_implements import CsvDataSource

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise UserError(f"The dataset CSV {path} does not exist; check the path.")
    header, rows, newline = read_table(path)
    _check_header(path, header)
    if not rows:
        raise UserError(f"The dataset CSV {path} has a header but no rows; it needs one row per sample.")
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise UserError(f"Row {number} of {path} has {len(row)} cells but the header has {len(header)}; fix that row.")

    _check_arrays(path, header, rows)
    try:
        source = CsvDataSource(path, shuffle=False, normalize=False)
    except Exception as error:
        raise UserError(f"nnabla could not read the dataset CSV {path} ({error}); check its header and rows.")
    image_names = set()
    first = rows[0]
    for cell, column in zip(first, header):
        if column.startswith("#"):
            continue
        if os.path.splitext(cell)[1].lower() in IMAGE_EXTENSIONS:
            image_names.add(variable_name(column))

    try:
        arrays, pixel_scale = _decode(path, header, rows, source, image_names, title)
    finally:
        source.close()  # nnabla keeps every data source alive (an atexit hook) until it is closed
    _check_finite(path, header, rows, arrays)
    return Dataset(path=path, header=header, rows=rows, newline=newline, arrays=arrays,
                   pixel_scale=pixel_scale, normalize=normalize)


def _decode(path, header, rows, source, image_names, title):
    """Decode every row with nnabla's data source into one preallocated array per variable."""
    names = list(source.variables)
    arrays, pixel_scale = {}, {}
    with Progress(title or f"Reading {os.path.basename(path)}", len(rows)) as progress:
        for position, row in enumerate(rows):
            try:
                decoded = source._get_data(position)  # nnabla's own decoding of one row
            except Exception as error:
                raise _diagnose_row(path, header, row, position + 2, error)
            for name, value in zip(names, decoded):
                value = np.asarray(value)
                if name not in arrays:
                    dtype = value.dtype if name in image_names else np.float32
                    arrays[name] = np.empty((len(rows),) + value.shape, dtype=dtype)
                    if name in image_names:
                        pixel_scale[name] = 65535.0 if value.dtype == np.uint16 else 255.0
                target = arrays[name]
                if value.shape != target.shape[1:]:
                    raise UserError(f"Row {position + 2} of {path}: the sample in column '{name}' has shape "
                                    f"{value.shape}, but the first row's has {target.shape[1:]}; every sample of a "
                                    "variable must have the same shape (resize the images to one size).")
                if name in image_names and value.dtype != target.dtype:
                    raise UserError(f"Row {position + 2} of {path}: the image in column '{name}' is {value.dtype} "
                                    f"but the first row's is {target.dtype}; save all images with the same bit depth.")
                target[position] = value
            if position % 256 == 255:
                progress.advance(256)
        progress.advance(len(rows) % 256)
    return arrays, pixel_scale
