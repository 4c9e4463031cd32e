"""Small pieces of self-contained HTML pages (no scripts, no network): tables, images, players.

Used by the evaluation report, the demo page and `deepaq score --html`. Images and audio are
linked by paths relative to the page, so a page and the files beside it can be moved together.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Iterable, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; vertical-align: middle; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
tr.best td { background: #eef7ee; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
audio { height: 32px; width: 240px; }
code, pre { background: #f6f6f6; padding: 1px 4px; } pre { padding: 0.6em; white-space: pre-wrap; }
.note { color: #555; font-size: 0.9em; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def rel(path: str | os.PathLike, page_dir: str | os.PathLike) -> str:
    """`path` relative to the page's folder, with forward slashes (for src/href)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(page_dir).resolve())).as_posix()


def url(path: str) -> str:
    """A relative path made safe for an attribute (spaces and the like percent-encoded)."""
    from urllib.parse import quote

    return quote(path, safe="/._-~")


def img(src: str, alt: str) -> str:
    return f'<img src="{esc(url(src))}" alt="{esc(alt)}">'


def audio(src: str, label: str = "") -> str:
    """An <audio> player for a relative path; `label` names it for screen readers."""
    return (f'<audio controls preload="metadata" src="{esc(url(src))}" aria-label="{esc(label)}">'
            f'<a href="{esc(url(src))}">{esc(label or src)}</a></audio>')


def table(header: Sequence[str], rows: Iterable[Sequence], text_columns: int = 1,
          classes: Sequence[str] | None = None) -> str:
    """An HTML table; the first `text_columns` columns are left-aligned, cells are escaped
    unless they are `Raw` (already HTML, e.g. a player)."""
    def cell(tag: str, i: int, value) -> str:
        cls = ' class="text"' if i < text_columns else ""
        body = value.html if isinstance(value, Raw) else esc(value)
        return f"<{tag}{cls}>{body}</{tag}>"

    out = ["<table>", "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"]
    for n, row in enumerate(rows):
        cls = f' class="{esc(classes[n])}"' if classes and classes[n] else ""
        out.append(f"<tr{cls}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


class Raw:
    """A table cell that is already HTML."""

    def __init__(self, html_text: str):
        self.html = html_text


def page(title: str, body: Iterable[str]) -> str:
    """A whole page with the shared style."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
