"""The report's HTML: Markdown through markdown-it-py, small fragments and the page template.

Markdown (the model card) is CommonMark plus pipe tables, rendered by markdown-it-py with
raw HTML escaped. A core rule then gives every heading an id, demotes headings by an
offset, and resolves relative links and pictures: a link to a missing file keeps only its
text, a missing picture becomes a note. The page itself is a ``string.Template`` with the
CSS inline, so it needs no network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import html
import re
from string import Template
from typing import Any
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

LinkResolver = Callable[[str], 'str | None']

_EXTERNAL = re.compile(r'^(https?:|mailto:|#)', re.IGNORECASE)
_REMOTE = re.compile(r'^(https?:)?//', re.IGNORECASE)

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

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style>
</head>
<body>
<header><h1>$title</h1><p>Generated $stamp by <code>plant-disease report</code>.
Works offline: every picture is in <code>$assets</code>.</p></header>
<nav>$nav</nav>
<main>
$sections
</main>
</body>
</html>
""")

SECTION = Template('<section id="$key"><h2>$heading</h2>\n$body\n</section>')


# ---------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------


def slugify(text: str) -> str:
    """Return an HTML id for a heading: lower case, words joined by hyphens."""
    slug = re.sub(r'[^\w\s-]', '', text.lower()).strip()
    return re.sub(r'[\s_]+', '-', slug) or 'section'


def _resolve_target(target: str, resolve: LinkResolver | None) -> str | None:
    """Return the URL for a link or picture target, or ``None`` when it is missing."""
    if _EXTERNAL.match(target) or target.startswith('data:'):
        return target
    if resolve is None:
        return None
    # markdown-it percent-encodes targets; the resolver looks for files by name.
    return resolve(unquote(target))


def _missing_picture(token: Token) -> Token:
    """Return an inline HTML token noting that the picture of ``token`` is missing."""
    note = Token('html_inline', '', 0)
    what = token.content or token.attrGet('src') or ''
    note.content = (f'<span class="missing">[picture not available: '
                    f'{html.escape(str(what))}]</span>')
    return note


def _remote_picture(token: Token) -> Token:
    """Return an inline HTML token linking to the remote picture of ``token``.

    The page loads nothing from the network (it works offline, and ``--inline`` makes it
    one file): a picture on a server becomes a plain link to it.
    """
    link = Token('html_inline', '', 0)
    source = str(token.attrGet('src') or '')
    link.content = (f'<a href="{html.escape(source)}">[picture on the web: '
                    f'{html.escape(token.content or source)}]</a>')
    return link


def _resolve_inline(children: list[Token], resolve: LinkResolver | None) -> list[Token]:
    """Return ``children`` with links and pictures resolved, or unlinked when missing."""
    resolved: list[Token] = []
    unlinked_depth: list[bool] = []  # per open link: whether its tags are dropped
    for token in children:
        if token.type == 'image':
            if _REMOTE.match(str(token.attrGet('src') or '')):
                resolved.append(_remote_picture(token))
                continue
            target = _resolve_target(str(token.attrGet('src') or ''), resolve)
            if target is None:
                resolved.append(_missing_picture(token))
                continue
            token.attrSet('src', target)
        elif token.type == 'link_open':
            target = _resolve_target(str(token.attrGet('href') or ''), resolve)
            unlinked_depth.append(target is None)
            if target is None:
                continue
            token.attrSet('href', target)
        elif token.type == 'link_close':
            if unlinked_depth and unlinked_depth.pop():
                continue
        resolved.append(token)
    return resolved


def _report_rule(state: StateCore) -> None:
    """Give headings ids and demote them; resolve the links and pictures of every block."""
    resolve: LinkResolver | None = state.env.get('resolve')
    offset: int = state.env.get('heading_offset', 0)
    prefix: str = state.env.get('id_prefix', '')
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type in ('heading_open', 'heading_close'):
            token.tag = f'h{min(6, int(token.tag[1:]) + offset)}'
            if token.type == 'heading_open' and index + 1 < len(tokens):
                token.attrSet('id', prefix + slugify(tokens[index + 1].content))
        elif token.type == 'inline' and token.children:
            token.children = _resolve_inline(token.children, resolve)


def _markdown() -> MarkdownIt:
    """Return the Markdown parser of the report: CommonMark, tables, no raw HTML."""
    parser = MarkdownIt('commonmark', {'html': False, 'xhtmlOut': False}).enable('table')
    parser.core.ruler.push('plant_disease_report', _report_rule)
    return parser


_MARKDOWN = _markdown()


def markdown_to_html(text: str, resolve: LinkResolver | None = None,
                     heading_offset: int = 0, id_prefix: str = '') -> str:
    """Render CommonMark (with pipe tables) as HTML; raw HTML in ``text`` is escaped.

    ``resolve`` maps a relative link or picture to the URL to use, or ``None`` when it is
    missing (a picture then shows a note, a link its text); a picture on the web becomes
    a link to it. ``heading_offset`` demotes headings (1: ``#`` becomes ``<h2>``). Every
    heading gets an id from its text, after ``id_prefix`` (which keeps them apart from
    the page's own ids).
    """
    env: dict[str, Any] = {'resolve': resolve, 'heading_offset': heading_offset,
                           'id_prefix': id_prefix}
    return _MARKDOWN.render(text, env)


# ---------------------------------------------------------------------------------------
# Fragments and the page
# ---------------------------------------------------------------------------------------


def escape(value: Any) -> str:
    """Return ``str(value)`` escaped for HTML text and attributes."""
    return html.escape(str(value))


def missing_note(text: str) -> str:
    """Return a paragraph marking missing material; ``text`` is HTML."""
    return f'<p class="missing">{text}</p>'


def percent(value: Any, digits: int = 1) -> str:
    """Return a fraction as a percentage with ``digits`` decimals ('–' for ``None``)."""
    if value is None:
        return '–'
    return f'{100.0 * float(value):.{digits}f} %'


def key_value_table(rows: Sequence[tuple[str, str]]) -> str:
    """Return a two-column table; keys are text, values are HTML."""
    return '<table>' + ''.join(f'<tr><th>{escape(key)}</th><td>{value}</td></tr>'
                               for key, value in rows) + '</table>'


def figure_html(url: str, caption: str, wide: bool = False, alt: str | None = None,
                linked: bool = True) -> str:
    """Return a picture with its caption (HTML); ``alt`` defaults to the caption text.

    ``linked``: the picture links to itself (full size); a page with its pictures inlined
    leaves that out, which would hold each picture twice.
    """
    css = ' class="wide"' if wide else ''
    if alt is None:
        alt = html.unescape(re.sub(r'<[^>]+>', ' ', caption)).strip()
    url = escape(url)
    picture = f'<img src="{url}" alt="{escape(alt)}" loading="lazy">'
    if linked:
        picture = f'<a href="{url}">{picture}</a>'
    return f'<figure{css}>{picture}<figcaption>{caption}</figcaption></figure>'


def section_html(key: str, heading: str, body: str) -> str:
    """Return one section of the page; ``heading`` is text, ``body`` HTML."""
    return SECTION.substitute(key=escape(key), heading=escape(heading), body=body)


def page_html(title: str, stamp: str, assets_note: str, nav: Sequence[tuple[str, str]],
              sections: Sequence[str]) -> str:
    """Return the whole page: header, navigation of ``(id, heading)`` and the sections."""
    links = ''.join(f'<a href="#{escape(key)}">{escape(heading)}</a>' for key, heading in nav)
    return PAGE.substitute(title=escape(title), css=CSS, stamp=escape(stamp),
                           assets=escape(assets_note), nav=links,
                           sections='\n'.join(sections))
