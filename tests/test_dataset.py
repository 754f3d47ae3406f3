"""NNC dataset CSVs read through nnabla's CsvDataSource."""
import numpy as np
from PIL import Image

from helpers import read_csv
from nnc_plugin.data.dataset import read_dataset


def test_images_stay_compact_and_batches_are_normalised(digits):
    data = read_dataset(digits["train"])
    assert len(data) == 1000 and data.variables == ["x", "y"]
    assert data.arrays["x"].dtype == np.uint8 and data.sample_shape("x") == (1, 8, 8)
    batch = data.batch(np.array([3, 5]), {"x": (1, 8, 8), "y": (1,)})
    first = read_csv(digits["train"])[4]
    pixels = np.asarray(Image.open(f"{digits['folder']}/data/{first[0]}"), dtype=np.float32) / 255.0
    np.testing.assert_allclose(batch["x"][0, 0], pixels, atol=1e-6)
    assert batch["y"][0, 0] == float(first[1]) and batch["x"].dtype == np.float32


def test_no_image_normalization_keeps_pixel_values(digits):
    data = read_dataset(digits["train"], normalize=False)
    assert data.batch(np.arange(4), {"x": (64,)})["x"].max() > 1.0


def test_raw_rows_and_line_endings_are_kept(tmp_path, digits):
    source = tmp_path / "crlf.csv"
    rows = read_csv(digits["train"])[:4]
    source.write_bytes("\r\n".join(",".join([f"{digits['folder']}/data/{r[0]}" if r[0].endswith('.png') else r[0], r[1]])
                                   for r in rows).encode() + b"\r\n")
    data = read_dataset(str(source))
    assert data.newline == "\r\n" and data.header == ["x:image", "y:label"] and len(data.rows) == 3


def test_digest_changes_with_a_label(tmp_path, digits):
    first = read_dataset(digits["train"])
    data = read_csv(digits["train"])
    data[1][1] = str((int(data[1][1]) + 1) % 10)
    changed = tmp_path / "train.csv"
    changed.write_text("\n".join(",".join([f"{digits['folder']}/data/{r[0]}" if r[0].endswith('.png') else r[0], r[1]])
                                 for r in data) + "\n")
    assert read_dataset(str(changed)).arrays_digest() != first.arrays_digest()
