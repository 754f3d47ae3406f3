"""`nnc-cleanse report`: one self-contained HTML file, checked by rendering it in headless Chromium."""
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from helpers import read_csv
from nnc_plugin.outputs.report import thumbnail

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary():
    """The headless browser, or a skip (outside CI only) when none is installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.isfile(f"/usr/bin/{name}") else None)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed but CI is set: .ci/run installs it with 'apt-get install -y chromium'.")
    pytest.skip("no Chromium binary (apt-get install -y chromium); in CI this test fails instead of skipping")


def chromium(*arguments):
    """Run headless Chromium once with a fresh profile; return its standard output."""
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", *arguments],
            capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_report_renders_in_headless_chromium(tmp_path, scored_digits, cli):
    scored = scored_digits["csv"]
    report = tmp_path / "report" / "influence_report.html"
    cli("report", "-i", scored, "-o", report, "--top", "12")
    html = report.read_text(encoding="utf-8")
    # self-contained: nothing is fetched from anywhere, every image is inline
    assert not re.search(r'(?:src|href)="(?!data:)', html)
    assert "<link" not in html and "@import" not in html

    dom = chromium("--dump-dom", report.as_uri())
    table = read_csv(scored)
    scores = np.array([float(r[2]) for r in table[1:]])
    harmful, helpful = min(12, int((scores < 0).sum())), min(12, int((scores > 0).sum()))
    assert harmful > 0 and helpful > 0
    # the browser decoded every embedded thumbnail
    assert f'data-images-shown="{harmful + helpful}/{harmful + helpful}"' in dom
    assert dom.count('class="card harmful"') == harmful and dom.count('class="card helpful"') == helpful
    first = table[1]  # the most harmful row: its label, score and row index are on the first card
    card = dom[dom.index('class="card harmful"'):]
    card = card[:card.index("</figure>")]
    assert f"label <b>{first[1]}</b>" in card and f"row index {first[3]}<" in card
    assert f"{float(first[2]):.3g}" in card
    assert len(re.findall(r'<rect class="(?:harmful|helpful)"', dom)) == 48  # the histogram's bars
    for text in ("Most harmful samples", "Most helpful samples", "Distribution of the scores", "Run summary",
                 "Training samples</th><td>1000", "Validation samples</th><td>300", "Epochs</th><td>2"):
        assert text in dom, text

    screenshot = tmp_path / "report.png"
    chromium(f"--screenshot={screenshot}", "--window-size=1200,1600", report.as_uri())
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int32)
    assert pixels.shape == (1600, 1200, 3)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)  # harmful scores and borders
    dark = pixels.sum(axis=2) < 60  # the digits' black backgrounds and the text
    assert red.sum() > 500 and dark.sum() > 20000


def test_missing_images_show_a_placeholder(tmp_path, scored_digits, cli):
    scored = scored_digits["csv"]
    table = read_csv(scored)
    broken = tmp_path / "influence.csv"
    table[1][0] = "images/does_not_exist.png"
    broken.write_text("\n".join(",".join(r) for r in table) + "\n", encoding="utf-8")
    report = tmp_path / "report.html"
    cli("report", "-i", broken, "-o", report)
    html = report.read_text(encoding="utf-8")
    assert 'class="thumb missing"' in html and "image not found" in html
    assert "No run summary" in html


def test_thumbnails_of_arrays_and_large_images(tmp_path):
    np.save(tmp_path / "sample.npy", np.linspace(0, 1, 3 * 16 * 16).reshape(3, 16, 16))
    uri, size = thumbnail(str(tmp_path / "sample.npy"))
    assert uri.startswith("data:image/png;base64,") and size == (16, 16)
    Image.new("RGB", (640, 480), (10, 200, 30)).save(tmp_path / "large.jpg")
    uri, size = thumbnail(str(tmp_path / "large.jpg"))
    assert uri.startswith("data:image/png;base64,") and max(size) == 160
    assert thumbnail(str(tmp_path / "missing.png")) is None


def test_report_errors_are_one_sentence(tmp_path, scored_digits, cli):
    scored = scored_digits["csv"]
    result = cli("report", "-i", tmp_path / "missing.csv", "-o", tmp_path / "r.html", check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    result = cli("report", "-i", scored, "-o", scored, check=False)
    assert result.returncode == 2 and "choose another output name" in result.stderr
    result = cli("report", "-i", scored, "-o", tmp_path / "r.html", "--top", "0", check=False)
    assert result.returncode == 2 and "--top must be 1 or more" in result.stderr
    assert read_csv(scored)[0][-2:] == ["influence", "datasource_index"]


def test_tabular_data_shows_values_instead_of_thumbnails(tmp_path):
    from nnc_plugin.outputs.report import write_report
    scored = tmp_path / "influence.csv"
    rows = [f"{i / 10:.1f},{(i * 7) % 5 / 10:.1f},{i % 2},{(i - 6) / 1000:.4f},{i}" for i in range(12)]
    scored.write_text("x__0:width,x__1:height,y:label,influence,datasource_index\n" + "\n".join(rows) + "\n",
                      encoding="utf-8")
    html = open(write_report(str(scored), str(tmp_path / "report.html"), top=3), encoding="utf-8").read()
    assert "<img" not in html
    assert html.count('class="card harmful"') == 3 and html.count('class="card helpful"') == 3
    assert "width <b>0.0</b>" in html and "row index 0<" in html


def test_a_tabular_row_shows_its_label_first_whatever_its_columns(tmp_path):
    """NNC's inline columns (x__0 ... x__29), a comment column and the label last: each card names the label (the
    column the summary records as the loss's target), then the comment, then the first values."""
    from nnc_plugin.outputs.report import write_report
    scored = tmp_path / "influence.csv"
    header = ["#id"] + [f"x__{i}" for i in range(30)] + ["y", "influence", "datasource_index"]
    rows = [[f"row{i}"] + [f"{(i * j) % 7 / 7:.3f}" for j in range(30)] + [str(i % 2), f"{i - 6}", str(i)]
            for i in range(12)]
    scored.write_text("\n".join(",".join(r) for r in [header] + rows) + "\n", encoding="utf-8")
    (tmp_path / "influence.csv.summary.json").write_text('{"ranking": "influence", "label_columns": ["y"]}',
                                                        encoding="utf-8")
    html = open(write_report(str(scored), str(tmp_path / "report.html"), top=3), encoding="utf-8").read()
    first = html[html.index('class="card harmful"'):]
    first = first[:first.index("</figure>")]
    labels = re.findall(r'<span class="label">(.*?) <b>(.*?)</b></span>', first)
    assert labels[:3] == [("y", "0"), ("#id", "row0"), ("x__0", "0.000")], labels


def test_loss_rankings_are_described_as_such(tmp_path, digits, cli):
    """With the default ranking (training loss) every score is negative: the report ranks, it does not split by sign."""
    scored = tmp_path / "influence.csv"
    cli("score", "-m", digits["model"], "-o", scored, "--epochs", "2", "--ranking", "loss-history")
    report = tmp_path / "report.html"
    cli("report", "-i", scored, "-o", report, "--top", "5")
    html = report.read_text(encoding="utf-8")
    assert "Most suspicious samples (highest training loss)" in html
    assert html.count('class="card harmful"') == 5 and html.count('class="card helpful"') == 5
    assert "Ranking</th><td>loss-history" in html and "negative influence" not in html
    first = read_csv(scored)[1]
    assert f"row index {first[3]}<" in html[html.index('class="card harmful"'):]


def test_image_targets_show_beside_their_inputs(tmp_path, digits):
    """An auto-encoder's or image-to-image network's rows: the input and the target image, side by side."""
    from nnc_plugin.outputs.report import write_report
    images = [row[0] for row in read_csv(digits["train"])[1:9]]
    folder = os.path.dirname(digits["train"])
    rows = [f"{os.path.join(folder, images[i])},{os.path.join(folder, images[(i + 1) % 8])},{(i - 4) / 100:.2f},{i}"
            for i in range(8)]
    scored = tmp_path / "influence.csv"
    scored.write_text("x:image,y:target,influence,datasource_index\n" + "\n".join(rows) + "\n", encoding="utf-8")
    page = open(write_report(str(scored), str(tmp_path / "report.html"), top=2), encoding="utf-8").read()
    first = page[page.index('class="card harmful"'):]
    first = first[:first.index("</figure>")]
    assert first.count('<img class="thumb') == 2 and '<div class="thumbs">' in first
    assert 'title="image: ' in first and 'title="target: ' in first and "image / target" in first
