"""One static HTML page for an agronomist: model card, training, evaluation, explanations,
embeddings and the disease map of a field run.

The page needs no network: CSS is inline, pictures are copied into a folder beside the
page (or, with ``inline=True``, embedded as ``data:`` URIs) and every link is relative.
A section whose inputs are missing says so and says how to make them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import datetime
import hashlib
import html
import json
import os
from pathlib import Path
import re
import shutil
import tempfile
from typing import Any

MODEL_FILENAME = 'plant_disease_int8.tflite'
FLOAT_MODEL_FILENAME = 'plant_disease_float.keras'
LABELS_FILENAME = 'labels.txt'
MODEL_CARD_FILENAME = 'MODEL_CARD.md'
CURVES_FILENAME = 'training_curves.png'
CONFUSION_FILENAME = 'confusion_matrix.png'
MIME_TYPES = {'.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg',
              '.svg': 'image/svg+xml', '.gif': 'image/gif', '.json': 'application/json',
              '.geojson': 'application/geo+json', '.geojsons': 'application/geo+json-seq',
              '.csv': 'text/csv', '.md': 'text/markdown', '.txt': 'text/plain'}

# ---------------------------------------------------------------------------------------
# A small Markdown subset: headings, paragraphs, lists, tables, code, quotes, rules,
# emphasis, links and images. Enough for the model card; no dependency.
# ---------------------------------------------------------------------------------------

LinkResolver = Callable[[str], 'str | None']

_TABLE_SEPARATOR = re.compile(r'^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$')
_HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
_UNORDERED = re.compile(r'^(\s*)[-*+]\s+(.*)$')
_ORDERED = re.compile(r'^(\s*)\d{1,9}[.)]\s+(.*)$')
_RULE = re.compile(r'^\s{0,3}([-*_])(\s*\1){2,}\s*$')
_FENCE = re.compile(r'^\s{0,3}(`{3,}|~{3,})\s*([\w+-]*)')
_EXTERNAL = re.compile(r'^(https?:|mailto:|#)', re.IGNORECASE)


def slugify(text: str) -> str:
    """Return an HTML id for a heading: lower case, words joined by hyphens."""
    slug = re.sub(r'[^\w\s-]', '', text.lower()).strip()
    return re.sub(r'[\s_]+', '-', slug) or 'section'


def _inline(text: str, resolve: LinkResolver | None) -> str:
    """Render inline Markdown (code, images, links, bold, italic) of escaped text."""
    stash: list[str] = []

    def keep(fragment: str) -> str:
        stash.append(fragment)
        return f'\x00{len(stash) - 1}\x00'

    text = re.sub(r'(`+)(.+?)\1', lambda m: keep(f'<code>{html.escape(m.group(2))}</code>'),
                  text)

    def image(match: re.Match) -> str:
        alt, source = match.group(1), match.group(2).strip()
        target = _resolve_target(source, resolve)
        if target is None:
            return keep(f'<span class="missing">[picture not available: '
                        f'{html.escape(alt or source)}]</span>')
        return keep(f'<img src="{html.escape(target)}" alt="{html.escape(alt)}">')

    def link(match: re.Match) -> str:
        label, href = match.group(1), match.group(2).strip()
        target = _resolve_target(href, resolve)
        if target is None:
            return keep(html.escape(label))
        return keep(f'<a href="{html.escape(target)}">{_emphasis(html.escape(label))}</a>')

    text = re.sub(r'!\[([^\]]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)', image, text)
    text = re.sub(r'\[([^\]]+)\]\(([^)\s]+)(?:\s+"[^"]*")?\)', link, text)
    text = _emphasis(html.escape(text, quote=False))
    placeholder = re.compile('\x00(\\d+)\x00')
    while placeholder.search(text):  # a link's label may hold a code span
        text = placeholder.sub(lambda m: stash[int(m.group(1))], text)
    return text


def _emphasis(text: str) -> str:
    text = re.sub(r'\*\*(\S(?:.*?\S)?)\*\*', r'<strong>\1</strong>', text)
    text = re.sub(r'(?<!\w)__(\S(?:.*?\S)?)__(?!\w)', r'<strong>\1</strong>', text)
    text = re.sub(r'(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])', r'<em>\1</em>', text)
    # Underscore emphasis only between word boundaries: class names are full of '_'.
    return re.sub(r'(?<!\w)_(\S(?:[^_]*?\S)?)_(?!\w)', r'<em>\1</em>', text)


def _resolve_target(target: str, resolve: LinkResolver | None) -> str | None:
    if _EXTERNAL.match(target) or target.startswith('data:'):
        return target
    if resolve is None:
        return None
    return resolve(target)


def _split_row(line: str) -> list[str]:
    row = line.strip()
    if row.startswith('|'):
        row = row[1:]
    if row.endswith('|') and not row.endswith('\\|'):
        row = row[:-1]
    return [cell.strip().replace('\\|', '|') for cell in re.split(r'(?<!\\)\|', row)]


def _table(lines: list[str], resolve: LinkResolver | None) -> str:
    header = _split_row(lines[0])
    aligns = []
    for cell in _split_row(lines[1]):
        left, right = cell.startswith(':'), cell.endswith(':')
        aligns.append('center' if left and right else 'right' if right else
                      'left' if left else '')

    def cells(row: list[str], tag: str) -> str:
        out = []
        for index, cell in enumerate(row):
            align = aligns[index] if index < len(aligns) else ''
            style = f' style="text-align:{align}"' if align else ''
            out.append(f'<{tag}{style}>{_inline(cell, resolve)}</{tag}>')
        return '<tr>' + ''.join(out) + '</tr>'

    body = [cells(_split_row(line), 'td') for line in lines[2:]]
    return ('<table>\n<thead>' + cells(header, 'th') + '</thead>\n<tbody>\n'
            + '\n'.join(body) + '\n</tbody>\n</table>')


def markdown_to_html(text: str, resolve: LinkResolver | None = None,
                     heading_offset: int = 0) -> str:
    """Render a Markdown subset as HTML.

    Headings (``#``), paragraphs, flat bulleted and numbered lists (indented lines
    continue an item), pipe tables with alignment, fenced code, block quotes, rules,
    ``code``, **bold**, *italic*, links and images. ``resolve`` maps a relative link or
    picture to the URL to use, or None when it is missing (a picture then shows a note,
    a link its text). ``heading_offset`` demotes headings (1: ``#`` becomes ``<h2>``).
    """
    lines = text.replace('\r\n', '\n').replace('\t', '    ').split('\n')
    out: list[str] = []
    paragraph: list[str] = []
    index = 0

    def flush() -> None:
        if paragraph:
            out.append('<p>' + _inline(' '.join(line.strip() for line in paragraph), resolve)
                       + '</p>')
            paragraph.clear()

    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker, language = fence.group(1), fence.group(2)
            body = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith(marker):
                body.append(lines[index])
                index += 1
            index += 1
            attribute = f' class="language-{html.escape(language)}"' if language else ''
            out.append(f'<pre><code{attribute}>{html.escape(chr(10).join(body))}</code></pre>')
            continue
        if not line.strip():
            flush()
            index += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level = min(6, len(heading.group(1)) + heading_offset)
            title = heading.group(2)
            out.append(f'<h{level} id="{slugify(title)}">{_inline(title, resolve)}</h{level}>')
            index += 1
            continue
        if _RULE.match(line):
            flush()
            out.append('<hr>')
            index += 1
            continue
        if '|' in line and index + 1 < len(lines) and _TABLE_SEPARATOR.match(lines[index + 1]) \
                and '-' in lines[index + 1]:
            flush()
            rows = [line, lines[index + 1]]
            index += 2
            while index < len(lines) and '|' in lines[index] and lines[index].strip():
                rows.append(lines[index])
                index += 1
            out.append(_table(rows, resolve))
            continue
        if line.lstrip().startswith('>'):
            flush()
            quoted = []
            while index < len(lines) and lines[index].lstrip().startswith('>'):
                quoted.append(lines[index].lstrip()[1:].removeprefix(' '))
                index += 1
            out.append('<blockquote>' + markdown_to_html('\n'.join(quoted), resolve,
                                                         heading_offset) + '</blockquote>')
            continue
        item = _UNORDERED.match(line) or _ORDERED.match(line)
        if item:
            flush()
            ordered = _UNORDERED.match(line) is None
            pattern = _ORDERED if ordered else _UNORDERED
            items: list[list[str]] = []
            while index < len(lines):
                current = lines[index]
                match = pattern.match(current)
                if match:
                    items.append([match.group(2)])
                elif current.strip() and current.startswith((' ', '\t')) and items:
                    items[-1].append(current.strip())
                else:
                    break
                index += 1
            tag = 'ol' if ordered else 'ul'
            out.append(f'<{tag}>' + ''.join(
                f'<li>{_inline(" ".join(parts), resolve)}</li>' for parts in items)
                + f'</{tag}>')
            continue
        paragraph.append(line)
        index += 1
    flush()
    return '\n'.join(out)


# ---------------------------------------------------------------------------------------
# Assets: pictures and files the page refers to.
# ---------------------------------------------------------------------------------------


class Assets:
    """Copies files beside the page (or inlines them) and returns the URL to use."""

    def __init__(self, page: Path, inline: bool = False) -> None:
        """Keep assets of ``page`` in ``<page stem>_files/`` (or inline them)."""
        self.page = page
        self.inline = inline
        self.folder = page.parent / f'{page.stem}_files'
        self._urls: dict[Path, str] = {}
        self._names: set[str] = set()
        self._scratch: tempfile.TemporaryDirectory | None = None

    def scratch(self) -> Path:
        """Return a temporary folder for pictures made on the fly (gone after cleanup)."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix='plant_disease_report_')
        return Path(self._scratch.name)

    def cleanup(self) -> None:
        """Remove the scratch folder."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def url(self, path: str | os.PathLike, inline: bool | None = None) -> str:
        """Return the URL of ``path`` for the page, copying or inlining it once."""
        source = Path(path).resolve()
        if source in self._urls:
            return self._urls[source]
        if not source.is_file():
            raise FileNotFoundError(f'{source} is not a file')
        if self.inline if inline is None else inline:
            mime = MIME_TYPES.get(source.suffix.lower(), 'application/octet-stream')
            url = f'data:{mime};base64,' + base64.b64encode(source.read_bytes()).decode()
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = self._unique_name(source)
            shutil.copyfile(source, self.folder / name)
            url = f'{self.folder.name}/{name}'
        self._urls[source] = url
        return url

    def _unique_name(self, source: Path) -> str:
        name = re.sub(r'[^\w.-]', '_', source.name)
        if name in self._names:
            digest = hashlib.sha256(str(source).encode()).hexdigest()[:8]
            name = f'{Path(name).stem}_{digest}{Path(name).suffix}'
        self._names.add(name)
        return name

    def shown(self, path: str | os.PathLike) -> bool:
        """Return whether ``path`` has been placed on the page already."""
        return Path(path).resolve() in self._urls

    def resolver(self, folders: Sequence[Path]) -> LinkResolver:
        """Return a resolver of relative references against ``folders``, first found wins."""
        def resolve(target: str) -> str | None:
            relative = target.split('#', 1)[0].split('?', 1)[0]
            if not relative:
                return None
            for folder in folders:
                candidate = folder / relative
                if candidate.is_file():
                    return self.url(candidate)
            return None
        return resolve


# ---------------------------------------------------------------------------------------
# The page.
# ---------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0;
  color: #1d2a1d; background: #f6f8f4; line-height: 1.45; }
header { background: #2f5d34; color: white; padding: 1.2em 2em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.6em; }
header p { margin: 0; opacity: .85; font-size: .9em; }
nav { background: #e3eadf; padding: .5em 2em; font-size: .92em; position: sticky; top: 0; }
nav a { margin-right: 1.2em; color: #2f5d34; text-decoration: none; }
main { max-width: 1100px; margin: 0 auto; padding: 1em 2em 3em 2em; }
section { background: white; border-radius: 6px; padding: .6em 1.4em 1.2em 1.4em;
  margin: 1.2em 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { border-bottom: 2px solid #cfdccb; padding-bottom: .2em; color: #2f5d34; }
img { max-width: 100%; height: auto; }
figure { margin: 1em 0; }
figcaption { font-size: .85em; color: #4b5a4b; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #d5ddd2; padding: .25em .6em; vertical-align: top; }
th { background: #eef3ec; }
code { background: #eef1ec; padding: 0 .25em; border-radius: 3px; font-size: .92em; }
pre { background: #eef1ec; padding: .8em; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; }
blockquote { border-left: 4px solid #cfdccb; margin: .5em 0; padding: .1em 1em; color: #445; }
.missing { color: #8a5a00; background: #fff6e0; padding: .4em .7em; border-radius: 4px;
  display: inline-block; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
  gap: 1em; }
.wide { grid-column: 1 / -1; }
.ok { color: #2f7d32; } .bad { color: #b3261e; }
.card { border-left: 4px solid #cfdccb; padding-left: 1em; }
"""


@dataclass
class ReportInputs:
    """Where the report's material is; any of it may be missing."""

    models_dir: Path = Path('models')
    run_dir: Path | None = Path('runs/plantvillage')
    eval_dir: Path | None = None
    explanations_dir: Path | None = None
    embed_dir: Path | None = None
    map_path: Path | None = None
    max_explanations: int = 60


@dataclass
class ReportResult:
    """The page, and each section's state: 'ok' or why it is missing."""

    path: Path
    sections: dict[str, str] = field(default_factory=dict)


def _escape(value: Any) -> str:
    return html.escape(str(value))


def _missing(text: str) -> str:
    return f'<p class="missing">{text}</p>'


def _percent(value: Any, digits: int = 1) -> str:
    if value is None:
        return '–'
    return f'{100.0 * float(value):.{digits}f} %'


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _figure(assets: Assets, path: Path, caption: str, wide: bool = False,
            alt: str | None = None) -> str:
    """Return a linked picture with its caption (HTML); ``alt`` defaults to the caption text."""
    css = ' class="wide"' if wide else ''
    if alt is None:
        alt = html.unescape(re.sub(r'<[^>]+>', ' ', caption)).strip()
    url = _escape(assets.url(path))
    return (f'<figure{css}><a href="{url}"><img src="{url}" alt="{_escape(alt)}" '
            f'loading="lazy"></a><figcaption>{caption}</figcaption></figure>')


def _figure_once(assets: Assets, path: Path, caption: str, what: str) -> str:
    """Return the figure, or a pointer to it when the model card already shows it."""
    if assets.shown(path):
        return (f'<p>The {_escape(what)} are shown in the <a href="#model">model card</a> '
                f'(<a href="{_escape(assets.url(path))}">full size</a>).</p>')
    return _figure(assets, path, caption)


def _key_value_table(rows: Sequence[tuple[str, str]]) -> str:
    return '<table>' + ''.join(f'<tr><th>{_escape(key)}</th><td>{value}</td></tr>'
                               for key, value in rows) + '</table>'


def _first_file(folders: Sequence[Path | None], name: str) -> Path | None:
    for folder in folders:
        if folder is not None and (folder / name).is_file():
            return folder / name
    return None


def _eval_folders(inputs: ReportInputs) -> list[Path]:
    folders = []
    if inputs.eval_dir is not None:
        folders.append(Path(inputs.eval_dir))
    if inputs.run_dir is not None:
        run = Path(inputs.run_dir)
        folders += [run / 'eval', run / 'evaluation', run]
    folders.append(Path(inputs.models_dir))
    return [folder for folder in folders if folder.is_dir()]


def _model_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    models = Path(inputs.models_dir)
    parts = []
    state = 'ok'
    rows = []
    model = models / MODEL_FILENAME
    if model.is_file():
        digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
        rows.append(('int8 model', f'<code>{_escape(model.name)}</code>, '
                                   f'{model.stat().st_size / 1024:.0f} KiB, sha256 '
                                   f'<code>{digest}…</code>'))
    else:
        rows.append(('int8 model', f'<span class="missing">no {_escape(model)}</span>'))
        state = f'no {model}'
    float_model = models / FLOAT_MODEL_FILENAME
    rows.append(('float model', f'<code>{_escape(float_model.name)}</code>, '
                                f'{float_model.stat().st_size / 1024:.0f} KiB'
                 if float_model.is_file() else 'not shipped (Grad-CAM needs it)'))
    labels_path = models / LABELS_FILENAME
    if labels_path.is_file():
        labels = [line.strip() for line in labels_path.read_text().splitlines()
                  if line.strip()]
        rows.append(('classes', f'{len(labels)}: ' + ', '.join(
            f'<code>{_escape(label)}</code>' for label in labels)))
    else:
        rows.append(('classes', f'<span class="missing">no {_escape(labels_path)}</span>'))
    parts.append(_key_value_table(rows))
    card = models / MODEL_CARD_FILENAME
    if card.is_file():
        folders = [models] + _eval_folders(inputs)
        rendered = markdown_to_html(card.read_text(), assets.resolver(folders),
                                    heading_offset=2)
        parts.append(f'<div class="card">{rendered}</div>')
    else:
        parts.append(_missing(f'No model card ({_escape(card)}): write one with '
                              '<code>plant-disease model-card</code>.'))
        if state == 'ok':
            state = f'no {card}'
    return '\n'.join(parts), state


def _training_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    if inputs.run_dir is None or not Path(inputs.run_dir).is_dir():
        return _missing('No training run folder given or found (<code>--run</code>).'), \
            'no run folder'
    run = Path(inputs.run_dir)
    parts = []
    summary = _read_json(run / 'train_summary.json')
    if isinstance(summary, dict):
        model = summary.get('model', {})
        rows = [
            ('network', _escape(f'{model.get("architecture", "?")} width '
                                f'{model.get("width", "?")}, input {model.get("input_size", "?")}'
                                ' px')),
            ('epochs', _escape(summary.get('epochs_run', '?'))),
            ('best validation top-1', _percent(summary.get('best_val_accuracy'), 2)),
            ('training time', _escape(f'{float(summary.get("train_seconds", 0)) / 60:.0f} min')),
            ('parameters', _escape(f'{summary.get("parameters", 0):,}')),
        ]
        parts.append(_key_value_table(rows))
    else:
        parts.append(_missing(f'No <code>train_summary.json</code> in {_escape(run)}.'))
    curves = _first_file([run] + _eval_folders(inputs), CURVES_FILENAME)
    if curves is None:
        parts.append(_missing(f'No <code>{CURVES_FILENAME}</code> in {_escape(run)}.'))
        return '\n'.join(parts), f'no {CURVES_FILENAME}'
    parts.append(_figure_once(assets, curves, 'Loss and accuracy per epoch (training and '
                                              'validation).', 'training curves'))
    return '\n'.join(parts), 'ok'


def _evaluation_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    folders = _eval_folders(inputs)
    parts = []
    evaluation_path = _first_file(folders, 'evaluation.json')
    evaluation = _read_json(evaluation_path) if evaluation_path else None
    if isinstance(evaluation, dict):
        int8 = evaluation.get('int8', {})
        float_ = evaluation.get('float', {})
        rows = [('photos', _escape(f'{evaluation.get("photos", "?")} '
                                   f'({evaluation.get("split", "?")} split)')),
                ('int8 top-1 / top-3', f'{_percent(int8.get("top1"), 2)} / '
                                       f'{_percent(int8.get("top3"), 2)}'),
                ('int8 macro F1', _escape(f'{int8.get("macro_f1", float("nan")):.4f}'))]
        if float_:
            rows.append(('float top-1 / top-3', f'{_percent(float_.get("top1"), 2)} / '
                                                f'{_percent(float_.get("top3"), 2)}'))
        if evaluation.get('int8_float_agreement') is not None:
            rows.append(('int8/float agreement',
                         _percent(evaluation['int8_float_agreement'], 2)))
        confused = evaluation.get('most_confused') or []
        if confused:
            rows.append(('most confused', '<br>'.join(
                _escape(f'{pair.get("truth")} → {pair.get("predicted")} ({pair.get("count")})')
                for pair in confused[:8])))
        files = [evaluation_path] + [evaluation_path.parent / name for name in
                                     ('per_class.csv',)
                                     if (evaluation_path.parent / name).is_file()]
        rows.append(('files', ', '.join(f'<a href="{_escape(assets.url(path))}">'
                                        f'{_escape(path.name)}</a>' for path in files)))
        parts.append(_key_value_table(rows))
    matrix = _first_file(folders, CONFUSION_FILENAME)
    if matrix is None:
        parts.append(_missing(f'No <code>{CONFUSION_FILENAME}</code> (run <code>plant-disease '
                              'evaluate</code> and pass its folder with <code>--eval</code>).'))
        return '\n'.join(parts), f'no {CONFUSION_FILENAME}'
    parts.append(_figure_once(assets, matrix, 'Confusion matrix of the int8 model on the '
                                              'held-out test photos (rows: truth, columns: '
                                              'prediction).', 'confusion matrix'))
    return '\n'.join(parts), 'ok'


def _yes_no(value: bool | None) -> str:
    if value is None:
        return '–'
    return '<span class="ok">on leaf</span>' if value else '<span class="bad">off leaf</span>'


def _explanations_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    folder = inputs.explanations_dir
    how = ('make them with <code>plant-disease explain PHOTOS --out DIR</code> and pass '
           '<code>--explanations DIR</code>')
    if folder is None:
        return _missing(f'No explanations given: {how}.'), 'not given'
    document = _read_json(Path(folder) / 'explanations.json')
    if not isinstance(document, dict):
        return _missing(f'No readable <code>explanations.json</code> in '
                        f'{_escape(folder)}: {how}.'), 'no explanations.json'
    summary = document.get('summary', {})
    iou = summary.get('iou_top20') or {}
    rows = [('photos', _escape(summary.get('images', '?'))),
            ('occlusion map peak on the leaf',
             _percent(summary.get('occlusion_peak_on_leaf_fraction'), 0)),
            ('Grad-CAM peak on the leaf', _percent(summary.get('gradcam_peak_on_leaf_fraction'),
                                                   0)),
            ("IoU of the two maps' top-20 % regions",
             _escape(f'mean {iou["mean"]:.2f}, median {iou["median"]:.2f}, min '
                     f'{iou["min"]:.2f}, max {iou["max"]:.2f}') if iou else '–'),
            ('float/int8 top-1 agreement', _percent(summary.get('top1_agreement'), 0)),
            ('all figures', f'<a href="{_escape(assets.url(Path(folder) / "explanations.json"))}"'
                            '>explanations.json</a>'),
            ('occlusion grid', _escape(
                f'{document.get("grid", "?")} × {document.get("grid", "?")} cells, fill '
                f'{document.get("fill", "?")}; retried with larger patches '
                f'({", ".join(map(str, document.get("fallback_patches", [])))} cells) where '
                'flat: '
                f'{summary.get("occlusion_fallback_patch", "?")} photos, still flat: '
                f'{summary.get("occlusion_flat", "?")}'))]
    parts = [
        "<p>Grad-CAM shows where the float Keras model's evidence for the class lies; "
        "occlusion shows how much the deployed int8 model's score drops when each part of "
        "the photo is covered. Both explain the int8 model's top class. A low IoU means "
        'the two models rely on different regions.</p>',
        _key_value_table(rows)]
    images = document.get('images', [])
    figures = []
    for record in images[:inputs.max_explanations]:
        figure = record.get('figure')
        path = Path(folder) / figure if figure else None
        int8 = (record.get('top3_int8') or [{}])[0]
        float_ = (record.get('top3_float') or [{}])[0]
        caption = (f'<b>{_escape(Path(record.get("image", "?")).name)}</b><br>'
                   f'int8: {_escape(int8.get("label", "–"))} {_percent(int8.get("score"), 0)}'
                   f'; float: {_escape(float_.get("label", "–"))} '
                   f'{_percent(float_.get("score"), 0)}<br>'
                   f'IoU {_escape(record.get("iou_top20", "–"))}; occlusion '
                   f'{_yes_no(record.get("occlusion_peak_on_leaf"))}, Grad-CAM '
                   f'{_yes_no(record.get("gradcam_peak_on_leaf"))}')
        if path is not None and path.is_file():
            figures.append(_figure(assets, path, caption,
                                   alt=f'explanation of {Path(record.get("image", "?")).name}'))
        else:
            figures.append(f'<figure><span class="missing">picture missing</span>'
                           f'<figcaption>{caption}</figcaption></figure>')
    parts.append('<div class="figures">' + '\n'.join(figures) + '</div>')
    if len(images) > inputs.max_explanations:
        parts.append(f'<p>{len(images) - inputs.max_explanations} more photos are in '
                     f'<code>explanations.json</code>.</p>')
    return '\n'.join(parts), 'ok'


def _embedding_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    folder = inputs.embed_dir
    how = ('make them with <code>plant-disease embed DATASET --out DIR</code> and pass '
           '<code>--embed DIR</code>')
    if folder is None:
        return _missing(f'No embedding pictures given: {how}.'), 'not given'
    folder = Path(folder)
    pictures = [(folder / name, caption) for name, caption in (
        ('pca.png', 'PCA of the penultimate (pooled) features, coloured by class.'),
        ('tsne.png', 't-SNE of the same features: classes the network separates form '
                     'islands.'))
        if (folder / name).is_file()]
    overlap = _read_json(folder / 'overlap.json')
    if not pictures and not isinstance(overlap, dict):
        return _missing(f'No embedding pictures in {_escape(folder)}: {how}.'), 'no files'
    parts = ['<div class="figures">' + '\n'.join(
        _figure(assets, path, caption) for path, caption in pictures) + '</div>']
    if isinstance(overlap, dict):
        pairs = overlap.get('pairs', [])[:10]
        parts.append(f'<p>{_escape(overlap.get("photos", "?"))} photos; for each, its '
                     f'{_escape(overlap.get("k", "?"))} nearest neighbours in feature space '
                     f'({_escape(overlap.get("distance", ""))} distance). Classes whose '
                     'neighbourhoods mix most (all pairs in <a href="'
                     f'{_escape(assets.url(folder / "overlap.json"))}">overlap.json</a>):</p>')
        if pairs:
            parts.append('<table><thead><tr><th>classes</th><th>overlap</th>'
                         '<th>first → second</th><th>second → first</th></tr></thead><tbody>'
                         + ''.join(
                             f'<tr><td>{_escape(" ↔ ".join(pair["classes"]))}</td>'
                             f'<td>{_percent(pair["overlap"])}</td>'
                             f'<td>{_percent(pair["first_to_second"])}</td>'
                             f'<td>{_percent(pair["second_to_first"])}</td></tr>'
                             for pair in pairs) + '</tbody></table>')
        else:
            parts.append('<p>No two classes share neighbourhoods.</p>')
    else:
        parts.append(_missing('No <code>overlap.json</code> beside the pictures.'))
    return '\n'.join(parts), 'ok'


def _map_files(path: Path) -> tuple[list[Path], list[Path]]:
    """Return the (PNG pictures, GeoJSON files) a --map path names."""
    if path.is_dir():
        entries = sorted(entry for entry in path.iterdir() if entry.is_file())
    else:
        entries = [path]
    pictures = [entry for entry in entries if entry.suffix.lower() == '.png']
    geojson = [entry for entry in entries if entry.suffix.lower() == '.geojson']
    stems = {entry.stem for entry in geojson}
    # A saved run has both the sequence and the collection: use the collection.
    geojson += [entry for entry in entries
                if entry.suffix.lower() == '.geojsons' and entry.stem not in stems]
    return pictures, geojson


def _map_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    how = ('record a field run with <code>disease_map_recorder</code> and pass '
           '<code>--map</code> its PNG, GeoJSON or folder')
    if inputs.map_path is None:
        return _missing(f'No disease map given: {how}.'), 'not given'
    path = Path(inputs.map_path)
    if not path.exists():
        return _missing(f'{_escape(path)} does not exist: {how}.'), 'missing'
    pictures, geojson = _map_files(path)
    parts = []
    picture_stems = {picture.stem for picture in pictures}
    for source in geojson:
        try:
            from plant_disease_ros.core.disease_map import read_features, summarize

            features = read_features(source)
        except (OSError, ValueError) as error:
            parts.append(_missing(f'Cannot read {_escape(source.name)}: {_escape(error)}'))
            continue
        summary = summarize(features, cell_size_m=2.0)
        per_label = summary.get('detections_per_label', {})
        rows = [('file', f'<a href="{_escape(assets.url(source))}">'
                         f'{_escape(source.name)}</a>'),
                ('detections', _escape(f'{summary["detections"]} ({summary["located"]} with a '
                                       f'position)')),
                ('diseased detections', _escape(summary['diseased_detections'])),
                ('diseased 2 m cells', _escape(f'{summary["diseased_cells"]} of '
                                               f'{summary["cells"]}')),
                ('per label', '<br>'.join(_escape(f'{label}: {count}')
                                          for label, count in per_label.items()) or '–')]
        parts.append(f'<h3>{_escape(source.name)}</h3>' + _key_value_table(rows))
        if source.stem not in picture_stems and features:
            rendered = _render_map(features, assets, source)
            if rendered is not None:
                pictures.append(rendered)
                picture_stems.add(source.stem)
    if pictures:
        parts.append('<div class="figures">' + '\n'.join(
            _figure(assets, picture, _escape(picture.name), wide=True)
            for picture in pictures) + '</div>')
    if not parts:
        return _missing(f'No PNG or GeoJSON in {_escape(path)}: {how}.'), 'no files'
    return '\n'.join(parts), 'ok'


def _render_map(features: list[dict], assets: Assets, source: Path) -> Path | None:
    """Render a map PNG of ``features`` into the asset folder (None without matplotlib)."""
    try:
        from plant_disease_ros.core.map_render import render_disease_map
    except ImportError:
        return None
    try:
        return render_disease_map(features, assets.scratch() / f'{source.stem}_map.png',
                                  title=source.name)
    except (ImportError, ValueError, OSError):
        return None


SECTIONS: tuple[tuple[str, str, Callable[[ReportInputs, Assets], tuple[str, str]]], ...] = (
    ('model', 'Model and model card', _model_section),
    ('training', 'Training', _training_section),
    ('evaluation', 'Evaluation', _evaluation_section),
    ('explanations', 'What the model looks at', _explanations_section),
    ('embedding', 'Feature space', _embedding_section),
    ('map', 'Disease map', _map_section),
)


def build_report(inputs: ReportInputs, out_path: str | os.PathLike = 'report/index.html',
                 inline: bool = False, title: str = 'Plant disease classifier report',
                 ) -> ReportResult:
    """Write the HTML page gathering whatever of ``inputs`` exists; return its state."""
    page = Path(out_path)
    page.parent.mkdir(parents=True, exist_ok=True)
    assets = Assets(page, inline=inline)
    if assets.folder.is_dir():
        shutil.rmtree(assets.folder)  # stale pictures of an earlier report
    result = ReportResult(path=page)
    bodies = []
    try:
        for key, heading, render in SECTIONS:
            body, state = render(inputs, assets)
            result.sections[key] = state
            bodies.append(f'<section id="{key}"><h2>{_escape(heading)}</h2>\n{body}\n'
                          '</section>')
    finally:
        assets.cleanup()
    stamp = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
    nav = ''.join(f'<a href="#{key}">{_escape(heading)}</a>' for key, heading, _ in SECTIONS)
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{_escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n'
        f'<header><h1>{_escape(title)}</h1><p>Generated {_escape(stamp)} by '
        '<code>plant-disease report</code>. Works offline: every picture is in '
        f'<code>{_escape(assets.folder.name if not inline else "the page")}</code>.'
        '</p></header>\n'
        f'<nav>{nav}</nav>\n<main>\n' + '\n'.join(bodies) + '\n</main>\n</body>\n</html>\n')
    page.write_text(document, encoding='utf-8')
    return result
