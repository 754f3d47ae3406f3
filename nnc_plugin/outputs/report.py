"""The visual report: one self-contained HTML file a no-code user opens in any browser.

It shows the run's summary, the most harmful and the most helpful training samples as
thumbnails (label, score and row index under each), and the distribution of the scores.
Images are embedded as data URIs and the style sheet is inline, so the file can be moved,
mailed or archived on its own; it loads nothing from anywhere.
"""
import base64
import datetime
import html
import io
import os

import numpy as np

from .. import __version__ as VERSION
from .cleanse import read_scored_csv
from ..data.dataset import IMAGE_EXTENSIONS, display_name
from ..errors import UserError
from ..scores import report_text
from ..log import info
from ..files import write_atomically
from .output import check_writable, harmful_order
from .summary import read_summary, summary_path

DEFAULT_TOP = 24
THUMBNAIL_PIXELS = 160  # larger images are shrunk to this size before they are embedded
BROWSER_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp"}
RAW_EMBED_BYTES = 64 * 1024  # small browser-readable files are embedded as they are


def thumbnail(path):
    """Return ``(data URI, (width, height))`` of an image or .npy file for embedding, or None if unreadable."""
    from PIL import Image

    try:
        if path.lower().endswith(".npy"):
            image = _array_image(np.load(path, allow_pickle=False))
            if image is None:
                return None
        else:
            image = Image.open(path)
            image.load()
        size = image.size
        if (image.format in BROWSER_FORMATS and max(size) <= THUMBNAIL_PIXELS
                and os.path.getsize(path) <= RAW_EMBED_BYTES):
            with open(path, "rb") as f:
                data, mime = f.read(), BROWSER_FORMATS[image.format]
        else:
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data, mime, size = buffer.getvalue(), "image/png", image.size
    except Exception:  # a missing or damaged file shows as a placeholder, never stops the report
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", size


def _array_image(array):
    """A PIL image of a 2-D array or a (channels, height, width) array with 1 or 3 channels, else None."""
    from PIL import Image

    array = np.squeeze(np.asarray(array, dtype=np.float64))
    if array.ndim == 3 and array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)) or array.size == 0:
        return None
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
    return Image.fromarray(np.nan_to_num(scaled).astype(np.uint8))


def _image_columns(table):
    """The positions of the data columns whose first cell names an image or .npy file: the input, and for an
    auto-encoder or image-to-image network the target too."""
    return [position for position, cell in enumerate(table.rows[0])
            if not table.header[position].startswith("#")
            and os.path.splitext(cell)[1].lower() in IMAGE_EXTENSIONS + (".npy",)]


def _format(value):
    return f"{value:.3g}" if value != 0 else "0"


def _card(table, position, rank, images_at, kind):
    folder = os.path.dirname(table.path)
    parts = []
    for at in images_at:  # input (and target) images side by side, each named when there are several
        cell = table.rows[position][at]
        name = f"{display_name(table.header[at])}: " if len(images_at) > 1 else ""
        embedded = thumbnail(os.path.join(folder, cell.replace("\\", "/")))
        if embedded:
            uri, (width, height) = embedded
            pixelated = " pixelated" if max(width, height) < 64 else ""
            parts.append(f'<img class="thumb{pixelated}" src="{uri}" alt="{html.escape(cell)}" '
                         f'title="{html.escape(name + cell)}">')
        else:
            parts.append(f'<div class="thumb missing" title="{html.escape(name + cell)}">image not found</div>')
    if len(images_at) > 1:
        names = " / ".join(html.escape(display_name(table.header[at])) for at in images_at)
        parts = [f'<div class="thumbs">{"".join(parts)}</div><span class="label">{names}</span>']
    labels = []
    for at, (column, cell) in enumerate(zip(table.header, table.rows[position])):
        if at not in images_at:
            labels.append(f'<span class="label">{html.escape(display_name(column))} <b>{html.escape(cell)}</b></span>')
    score = table.scores[position]
    return (f'<figure class="card {kind}"><span class="rank">#{rank}</span>{"".join(parts)}<figcaption>'
            f'{"".join(labels[:4])}'
            f'<span class="score" title="influence">{html.escape(_format(score))}</span>'
            f'<span class="index">row index {int(table.indices[position])}</span>'
            f'</figcaption></figure>')


def _histogram_svg(scores, split, bins=48, width=1040, height=240):
    """An inline SVG bar chart of the scores; values beyond the 0.5/99.5 percentiles go to the end bars.

    Bars left of `split` are drawn as harmful; right of it as helpful when split is 0 (SGD influence),
    else as neutral. A split of None draws every bar neutral.
    """
    low, high = (float(v) for v in np.percentile(scores, [0.5, 99.5]))
    if high <= low:
        low, high = float(scores.min()) - 0.5, float(scores.max()) + 0.5
    edges = np.linspace(low, high, bins + 1)
    counts, _ = np.histogram(np.clip(scores, low, high), bins=edges)
    left, bottom, top_margin = 48, 34, 10
    plot_w, plot_h = width - left - 10, height - bottom - top_margin
    peak = max(int(counts.max()), 1)
    bar_w = plot_w / bins
    bars = []
    for i, count in enumerate(counts):
        x = left + i * bar_w
        h = plot_h * count / peak
        centre = (edges[i] + edges[i + 1]) / 2
        if split is None:
            colour = "neutral"
        elif centre < split or (split != 0 and edges[i] <= split):
            colour = "harmful"
        else:
            colour = "helpful" if split == 0 else "neutral"
        tip = f"{count} samples with influence from {_format(edges[i])} to {_format(edges[i + 1])}"
        bars.append(f'<rect class="{colour}" x="{x + 0.5:.1f}" y="{top_margin + plot_h - h:.1f}" '
                    f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}"><title>{tip}</title></rect>')
    axis_y = top_margin + plot_h
    ticks = [(left, "≤ " + _format(low), "start"), (left + plot_w, "≥ " + _format(high), "end")]
    if low < 0 < high:
        zero_x = left + plot_w * (0 - low) / (high - low)
        bars.append(f'<line class="zero" x1="{zero_x:.1f}" y1="{top_margin}" x2="{zero_x:.1f}" y2="{axis_y}"/>')
        ticks.append((zero_x, "0", "middle"))
    labels = "".join(f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="{anchor}">{html.escape(text)}</text>'
                     for x, text, anchor in ticks)
    return (f'<svg class="histogram" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="Distribution of the influence scores">'
            f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}"/>'
            f'<text x="{left - 6}" y="{top_margin + 10}" text-anchor="end">{peak}</text>'
            f'<text x="{left - 6}" y="{axis_y}" text-anchor="end">0</text>'
            f'{"".join(bars)}{labels}'
            f'<text x="{left + plot_w / 2:.1f}" y="{height - 2}" text-anchor="middle">'
            f'score (bar height: number of samples)</text>'
            f'</svg>')


def _seconds(value):
    value = float(value)
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


SUMMARY_FIELDS = (  # (label, summary key, formatter)
    ("Ranking", "ranking", str),
    ("Model file", "model", str),
    ("Training data", "input_train", str),
    ("Validation data", "input_val", str),
    ("Training samples", "n_train", str),
    ("Validation samples", "n_val", str),
    ("Epochs", "epochs", str),
    ("Batch size", "batch_size", str),
    ("Solver", "solver", str),
    ("Trials averaged (seeds)", "n_trials", str),
    ("First seed", "seed", str),
    ("Traced steps (last epochs)", "traced_steps", str),
    ("Mode", "mode", lambda m: {"final": "final (storage-efficient approximation)", "all": "all (exact)"}.get(m, m)),
    ("Validation loss after training", "validation_loss", lambda v: f"{float(v):.5f}"),
    ("Training time", "train_seconds", _seconds),
    ("Scoring time", "score_seconds", _seconds),
)


def _summary_rows(summary):
    rows = []
    influence_only = ("mode", "traced_steps")  # settings that only SGD influence uses
    for label, key, formatter in SUMMARY_FIELDS:
        if key in influence_only and summary.get("ranking", "sgd-influence") != "sgd-influence":
            continue
        value = summary.get(key)
        if value is not None and not (isinstance(value, float) and not np.isfinite(value)):
            rows.append(f"<tr><th>{html.escape(label)}</th><td>{html.escape(formatter(summary[key]))}</td></tr>")
    return "".join(rows)


STYLE = """
:root { --harmful: #c0392b; --helpful: #1f7a5a; --ink: #1d2330; --muted: #5b6475; --line: #dde1e8; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: var(--ink);
       font: 15px/1.45 "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 6px; }
p.lead { color: var(--muted); margin: 0 0 18px; max-width: 860px; }
p.note { color: var(--muted); margin: 4px 0 12px; font-size: 14px; }
div.warning { border-left: 4px solid var(--harmful); background: #fdecea; padding: 10px 14px; margin: 14px 0; }
.stats { display: flex; flex-wrap: wrap; gap: 12px; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.stat b { display: block; font-size: 22px; }
.stat span { color: var(--muted); font-size: 13px; }
.stat.harmful b { color: var(--harmful); }
.stat.helpful b { color: var(--helpful); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(118px, 1fr)); gap: 10px; }
.card { position: relative; margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
        padding: 8px; text-align: center; border-top: 4px solid var(--line); }
.card.harmful { border-top-color: var(--harmful); }
.card.helpful { border-top-color: var(--helpful); }
.thumb { display: block; width: 88px; height: 88px; margin: 0 auto 6px; object-fit: contain; background: #000; }
.thumb.pixelated { image-rendering: pixelated; }
.thumbs { display: flex; gap: 4px; justify-content: center; }
.thumbs .thumb { width: 52px; height: 52px; margin: 0 0 4px; }
.thumb.missing, .thumb.broken { display: flex; align-items: center; justify-content: center; background: #eee;
        color: var(--muted); font-size: 12px; }
figcaption { display: flex; flex-direction: column; gap: 1px; font-size: 12.5px; }
.rank { position: absolute; top: 6px; left: 6px; padding: 0 5px; border-radius: 4px; font-size: 11px;
        color: var(--muted); background: rgba(255, 255, 255, 0.9); border: 1px solid var(--line); }
.score { font-weight: 700; font-size: 14px; }
.card.harmful .score { color: var(--harmful); }
.card.helpful .score { color: var(--helpful); }
.index { color: var(--muted); }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.histogram { display: block; width: 100%; height: auto; font-size: 12px; fill: var(--muted); }
.histogram rect.harmful { fill: var(--harmful); }
.histogram rect.helpful { fill: var(--helpful); }
.histogram rect.neutral { fill: #9aa3b2; }
.histogram .axis { stroke: #98a0ad; }
.histogram .zero { stroke: var(--ink); stroke-dasharray: 3 3; }
table.summary { border-collapse: collapse; width: 100%; font-size: 14px; }
table.summary th { text-align: left; font-weight: 600; width: 260px; padding: 5px 10px 5px 0; vertical-align: top; }
table.summary td { padding: 5px 0; word-break: break-all; }
table.summary tr + tr { border-top: 1px solid var(--line); }
.next { background: #fffbea; border: 1px solid #f0e2a8; border-radius: 8px; padding: 10px 16px; margin-top: 18px; }
footer { color: var(--muted); font-size: 12px; margin-top: 30px; }
"""

# Marks images the browser could not decode, and records how many were shown (the tests read it).
SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img.thumb"), shown = 0;
  images.forEach(function (image) {
    if (image.complete && image.naturalWidth > 0) { shown += 1; } else { image.classList.add("broken"); }
  });
  document.body.setAttribute("data-images-shown", shown + "/" + images.length);
});
"""


def render_report(table, summary, top=DEFAULT_TOP):
    """Return the report's HTML text for a scored table and its run summary (a dict, maybe empty).

    Without a summary the scores are taken for SGD influence, the only thing NNC's own plugin writes.
    """
    ranking = summary.get("ranking") or "sgd-influence"
    text = report_text(ranking)
    order = harmful_order(table.scores, table.indices)
    n = len(table)
    if text.signed:
        harmful = [p for p in order[:top] if table.scores[p] < 0]
        helpful = [p for p in order[::-1][:top] if table.scores[p] > 0]
        split = 0.0
    else:
        harmful = list(order[:min(top, n)])
        helpful = [p for p in order[::-1][:top] if p not in set(harmful)]
        split = float(table.scores[harmful[-1]]) if harmful else None
    images_at = _image_columns(table)

    def grid(positions, kind, empty):
        if not positions:
            return f'<p class="note">{empty}</p>'
        cards = "".join(_card(table, p, rank, images_at, kind) for rank, p in enumerate(positions, start=1))
        return f'<div class="grid {kind}-samples">{cards}</div>'

    source = summary.get("input_train") or table.path
    median = f'<div class="stat"><b>{_format(float(np.median(table.scores)))}</b><span>median score</span></div>'
    if text.signed:
        negative, positive = int((table.scores < 0).sum()), int((table.scores > 0).sum())
        counts = (f'<div class="stat harmful"><b>{negative}</b><span>with negative influence (harmful)</span></div>'
                  f'<div class="stat helpful"><b>{positive}</b><span>with positive influence (helpful)</span></div>')
        lead = ('A <b style="color:var(--harmful)">negative</b> score means the model would have done better without '
                'that sample: look at those first, they are often mislabeled or unusual. A '
                '<b style="color:var(--helpful)">positive</b> score means the sample helped.')
        bars = ("Red bars: harmful samples (negative influence); green bars: helpful ones. Most samples sit near 0; "
                "the few far to the left are the cleansing candidates.")
    else:
        counts = f'<div class="stat"><b>{html.escape(ranking)}</b><span>ranking</span></div>'
        lead = ('The <b style="color:var(--harmful)">lower</b> the score, the more suspicious the sample: look at those '
                'first, they are often mislabeled or unusual.')
        bars = (f"Red bars: the {len(harmful)} lowest scores, shown above as the most suspicious samples; "
                "grey bars: the others.")
    stats = f'<div class="stats"><div class="stat"><b>{n}</b><span>training samples scored</span></div>{counts}{median}</div>'
    details = (f'<table class="summary">{_summary_rows(summary)}'
               f'<tr><th>Scored CSV</th><td>{html.escape(table.path)}</td></tr></table>'
               if summary else
               f'<p class="note">No run summary ({html.escape(os.path.basename(table.path))}.summary.json) was found '
               f'beside the scored CSV {html.escape(table.path)}.</p>')
    warnings = "".join(f'<div class="warning"><b>Check the training first.</b> {html.escape(w)}</div>'
                       for w in summary.get("warnings") or [])
    created = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Data cleansing report: {html.escape(os.path.basename(source))}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>Data cleansing report</h1>
<p class="lead">Every training sample of <b>{html.escape(os.path.basename(source))}</b> was scored by
{html.escape(text.scored_by)}. {lead}</p>
{stats}
{warnings}
<h2 id="harmful">{html.escape(text.low_title)}</h2>
<p class="note">The {len(harmful)} {html.escape(text.low_note)}, with their label, their score (red) and their row
index: the sample's position in the training CSV, counted from 0 (its datasource_index). Check each label: if it is
wrong or the image is unusable, remove or fix that row.</p>
{grid(harmful, "harmful", "No sample has a negative influence: none of them made the validation loss worse.")}
<h2 id="helpful">{html.escape(text.high_title)}</h2>
<p class="note">The {len(helpful)} {html.escape(text.high_note)}.</p>
{grid(helpful, "helpful", "No sample has a positive influence.")}
<h2 id="distribution">Distribution of the scores</h2>
<div class="panel">{_histogram_svg(table.scores, split)}
<p class="note">{bars}</p></div>
<div class="next"><b>Next step.</b> Write the training CSV without the most harmful rows with the plugin
<i>Data_cleansing_cleansed_dataset</i> (or <code>nnc-cleanse cleanse</code>), set it as the Training dataset of your
project and train again.</div>
<h2 id="summary">Run summary</h2>
<div class="panel">{details}</div>
<footer>Made by nnc-cleanse {html.escape(VERSION)} on {created}. This file is self-contained: it can be moved or
shared on its own.</footer>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_report(scored_csv, output, top=None):
    """Write the HTML report of a scored CSV (and its `.summary.json`, when present); return the output path.

    `top` (default 24) is how many of the most harmful and of the most helpful samples are shown.
    """
    top = DEFAULT_TOP if top is None else int(top)
    if top < 1:
        raise UserError(f"--top must be 1 or more, not {top}.")
    summary = read_summary(os.path.abspath(scored_csv))
    check_writable(output, inputs=(scored_csv, summary_path(scored_csv), summary.get("input_train")))
    table = read_scored_csv(scored_csv)
    text = render_report(table, summary, top=top)
    write_atomically(output, text)
    info(f"Wrote the report {output}; open it in a web browser to see the most harmful and most helpful samples.")
    return os.path.abspath(output)
