"""MkDocs hooks (``hooks:`` in mkdocs.yml): the site's front page is README.md, and a link to a
section of BENCHMARKS.md, from the README or a guide, goes to the site page that shows it.

BENCHMARKS.md is cut into sections by ``<!-- --8<-- [start:NAME] -->`` markers, and the speed and
results pages include them with pymdownx.snippets (``--8<-- "BENCHMARKS.md:NAME"``); a link to
``BENCHMARKS.md#ANCHOR`` is sent to the page that includes the section holding that heading.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from markdown.extensions.toc import slugify

LINK = re.compile(r"\]\(((?:\.\./)*)BENCHMARKS\.md(#[\w-]+)?\)")
INCLUDE = re.compile(r'--8<-- "BENCHMARKS\.md:([\w-]+)"')
START = re.compile(r"<!-- --8<-- \[start:([\w-]+)\] -->")
HEADING = re.compile(r"^#{2,6} (.+)$", re.M)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    root = Path(config.config_file_path).parent
    if page.file.src_uri == "index.md":
        markdown = (root / "README.md").read_text(encoding="utf-8")
        markdown = markdown.replace("](docs/", "](")
    where = _anchor_pages(root, Path(config.docs_dir))
    here = posixpath.dirname(page.file.src_uri)

    def to_site(match: re.Match[str]) -> str:
        anchor = match.group(2) or ""
        target = where.get(anchor[1:], "results.md") if anchor else "results.md"
        return f"]({posixpath.relpath(target, here or '.')}{anchor})"

    return LINK.sub(to_site, markdown)


def _anchor_pages(root: Path, docs: Path) -> dict[str, str]:
    """Each heading anchor of BENCHMARKS.md -> the docs page (relative to docs/) showing it."""
    page_of = {
        name: page.relative_to(docs).as_posix()
        for page in docs.rglob("*.md")
        for name in INCLUDE.findall(page.read_text(encoding="utf-8"))
    }
    text = (root / "BENCHMARKS.md").read_text(encoding="utf-8")
    anchors: dict[str, str] = {}
    pieces = START.split(text)
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        for heading in HEADING.findall(body):
            if name in page_of:
                anchors.setdefault(slugify(heading.strip(), "-"), page_of[name])
    return anchors
