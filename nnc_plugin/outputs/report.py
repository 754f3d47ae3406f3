"""The visual report: one self-contained HTML file a no-code user opens in any browser.

It shows the run's summary, the most harmful and the most helpful training samples as
thumbnails (label, score and row index under each; tabular rows show their label and first
values), and the distribution of the scores. Images are embedded as data URIs and the style sheet
is inline, so the file can be moved, mailed or archived on its own; it loads nothing from
anywhere. The page itself is templates/report.html; this module fills in its fields.
"""
import base64
import datetime
import html
import io
import os
import string

import numpy as np

from .. import __version__ as VERSION
from ..data.dataset import IMAGE_EXTENSIONS, display_name, variable_name
from ..errors import UserError
from ..files import check_writable, write_atomically
from ..log import info
from ..scores import report_text
from .groups import SHOWN_ROWS, likely_cause
from .scored_csv import harmful_order, read_scored_csv
from .summary import read_summary, summary_path

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "report.html")

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


LABELS_SHOWN = 4  # cells shown under a card besides its images: the label first, then comments and values


def _label_columns(table, summary):
    """Positions of the columns a card names first: the network's target (label) columns as the summary records
    them, else those of a variable named y (NNC's habit), else none."""
    names = summary.get("label_columns") or ["y"]
    return [at for at, cell in enumerate(table.header) if variable_name(cell) in names]


def _caption_columns(table, images_at, labels_at):
    """The columns a card shows in words: the labels, then comment columns (#id), then the other values."""
    labels_at = [at for at in labels_at if at not in images_at]  # an image target is shown as an image
    rest = [at for at in range(len(table.header)) if at not in images_at and at not in labels_at]
    comments = [at for at in rest if table.header[at].startswith("#")]
    return (labels_at + comments + [at for at in rest if at not in comments])[:LABELS_SHOWN]


def _thumbnails(table, position, images_at):
    """The HTML of a row's images (input, and for image-to-image networks the target), side by side."""
    folder = os.path.dirname(table.path)
    parts = []
    for at in images_at:
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
    return "".join(parts)


def _card(table, position, rank, columns, kind):
    """One sample's card: its images, its label and first values, its score and its row index."""
    images_at, shown = columns
    labels = "".join(f'<span class="label">{html.escape(display_name(table.header[at]))} '
                     f'<b>{html.escape(table.rows[position][at])}</b></span>' for at in shown)
    score = table.scores[position]
    return (f'<figure class="card {kind}"><span class="rank">#{rank}</span>{_thumbnails(table, position, images_at)}'
            f'<figcaption>{labels}<span class="score" title="influence">{html.escape(_format(score))}</span>'
            f'<span class="index">row index {int(table.indices[position])}</span></figcaption></figure>')


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


def _chosen_samples(table, text, top):
    """(positions of the harmful cards, of the helpful cards, the score that splits the histogram's colours)."""
    order = harmful_order(table.scores, table.indices)
    if text.signed:  # the sign itself says harmful or helpful
        harmful = [p for p in order[:top] if table.scores[p] < 0]
        helpful = [p for p in order[::-1][:top] if table.scores[p] > 0]
        return harmful, helpful, 0.0
    harmful = list(order[:min(top, len(table))])
    helpful = [p for p in order[::-1][:top] if p not in set(harmful)]
    return harmful, helpful, (float(table.scores[harmful[-1]]) if harmful else None)


def _grid(table, positions, columns, kind, empty):
    if not positions:
        return f'<p class="note">{empty}</p>'
    cards = "".join(_card(table, p, rank, columns, kind) for rank, p in enumerate(positions, start=1))
    return f'<div class="grid {kind}-samples">{cards}</div>'


def _headline(table, text, ranking, harmful_count):
    """(the statistics boxes, the lead sentence, the histogram's caption), in the words of the ranking's sign."""
    n, median = len(table), _format(float(np.median(table.scores)))
    boxes = f'<div class="stat"><b>{n}</b><span>training samples scored</span></div>'
    if text.signed:
        negative, positive = int((table.scores < 0).sum()), int((table.scores > 0).sum())
        boxes += (f'<div class="stat harmful"><b>{negative}</b><span>with negative influence (harmful)</span></div>'
                  f'<div class="stat helpful"><b>{positive}</b><span>with positive influence (helpful)</span></div>')
        lead = ('A <b style="color:var(--harmful)">negative</b> score means the model would have done better without '
                'that sample: look at those first, they are often mislabeled or unusual. A '
                '<b style="color:var(--helpful)">positive</b> score means the sample helped.')
        bars = ("Red bars: harmful samples (negative influence); green bars: helpful ones. Most samples sit near 0; "
                "the few far to the left are the cleansing candidates.")
    else:
        boxes += f'<div class="stat"><b>{html.escape(ranking)}</b><span>ranking</span></div>'
        lead = ('The <b style="color:var(--harmful)">lower</b> the score, the more suspicious the sample: look at those '
                'first, they are often mislabeled or unusual.')
        bars = (f"Red bars: the {harmful_count} lowest scores, shown above as the most suspicious samples; "
                "grey bars: the others.")
    boxes += f'<div class="stat"><b>{median}</b><span>median score</span></div>'
    return f'<div class="stats">{boxes}</div>', lead, bars


def _groups(table, summary, columns):
    """The section on the groups of harmful rows that act together (outputs/groups.py), "" when there are none."""
    groups = summary.get("groups") or []
    if not groups:
        return ""
    position_of = {int(index): position for position, index in enumerate(table.indices)}
    parts = ['<h2 id="groups">Harmful rows that act together</h2>',
             '<p class="note">Many of the most harmful rows share a label: together they pull the network the same '
             'way. Rows the network fits that do so often share an artefact, a mark or a shortcut, even when every '
             'label is right; rows it keeps getting wrong are more often wrong labels between two look-alike '
             'classes. Look at a few of them. A group also holds clean rows of its class, which the network needs: '
             'remove the rows that carry the fault (the first rows of the ranking) rather than the whole group '
             '(the plugin <i>Data_cleansing_cleansed_dataset</i> with <b>--group</b>, or '
             '<code>nnc-cleanse cleanse --group N</code>, removes them all).</p>']
    for number, group in enumerate(groups, start=1):
        effect = (f"; removing them all would change the validation loss by about "
                  f"{html.escape(_format(group['combined_effect']))} (a first estimate)"
                  if group.get("combined_effect") is not None else "")
        parts.append(f'<h3>Group {number}: {len(group["rows"])} rows labelled <b>{html.escape(group["label"])}</b>'
                     f'</h3><p class="note">{group["share_of_top"]:.0%} of the most harmful rows, against '
                     f'{group["share_of_data"]:.0%} of all rows{effect}.{_fit_note(group.get("fitted"))}</p>')
        shown = [position_of[r] for r in group["rows"][:SHOWN_ROWS] if r in position_of]
        parts.append(_grid(table, shown, columns, "group", ""))
    return "\n".join(parts)


def _fit_note(fitted):
    """A sentence on whether the network fits a group's rows (outputs/groups.likely_cause), "" where not known."""
    if fitted is None:
        return ""
    cause = likely_cause(fitted)
    return f" {cause[0].upper()}{cause[1:]}."


def _details(table, summary):
    if not summary:
        return (f'<p class="note">No run summary ({html.escape(os.path.basename(table.path))}.summary.json) was found '
                f'beside the scored CSV {html.escape(table.path)}.</p>')
    return (f'<table class="summary">{_summary_rows(summary)}'
            f'<tr><th>Scored CSV</th><td>{html.escape(table.path)}</td></tr></table>')


def render_report(table, summary, top=DEFAULT_TOP):
    """Return the report's HTML text for a scored table and its run summary (a dict, maybe empty).

    Without a summary the scores are taken for SGD influence, the only thing NNC's own plugin writes.
    """
    ranking = summary.get("ranking") or "sgd-influence"
    text = report_text(ranking)
    harmful, helpful, split = _chosen_samples(table, text, top)
    images_at = _image_columns(table)
    columns = (images_at, _caption_columns(table, images_at, _label_columns(table, summary)))
    stats, lead, bars = _headline(table, text, ranking, len(harmful))
    with open(TEMPLATE, encoding="utf-8") as f:
        template = string.Template(f.read())
    return template.substitute(
        source_name=html.escape(os.path.basename(summary.get("input_train") or table.path)),
        scored_by=html.escape(text.scored_by), lead=lead, stats=stats,
        warnings="".join(f'<div class="warning"><b>Check the training first.</b> {html.escape(w)}</div>'
                         for w in summary.get("warnings") or []),
        low_title=html.escape(text.low_title), low_note=html.escape(text.low_note), harmful_count=len(harmful),
        harmful_grid=_grid(table, harmful, columns, "harmful",
                           "No sample has a negative influence: none of them made the validation loss worse."),
        groups=_groups(table, summary, columns),
        high_title=html.escape(text.high_title), high_note=html.escape(text.high_note), helpful_count=len(helpful),
        helpful_grid=_grid(table, helpful, columns, "helpful", "No sample has a positive influence."),
        histogram=_histogram_svg(table.scores, split), bars=bars, details=_details(table, summary),
        version=html.escape(VERSION), created=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))


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
