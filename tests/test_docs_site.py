"""The documentation site builds with ``mkdocs build --strict`` offline (MkDocs, Material,
mkdocstrings): its front page is the README, its speed and results pages are BENCHMARKS.md's
sections, its API reference is read from the docstrings, and a broken link fails the build."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).with_name("mkdocs")


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    if not MKDOCS.exists():
        pytest.skip("mkdocs is not installed (the docs extra)")
    # offline: a proxy that refuses every connection, so a build that fetched anything would fail
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "http_proxy": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9"}  # fmt: skip
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_the_front_page_is_the_readme(site: Path) -> None:
    front = (site / "index.html").read_text()
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"^Image autoencoders in one command\.[^\n]*", readme, flags=re.M).group(0)
    assert html.escape(first, quote=False).split(".")[0] in front
    # the README's links to docs/ and BENCHMARKS.md are the site's own
    assert 'href="guides/train/"' in front and "docs/guides" not in front
    assert 'href="results/#photo-denoising"' in front
    assert 'href="speed/#training-speed"' in front
    assert 'src="images/denoise-kodak.png"' in front


def test_every_guide_and_page_is_built(site: Path) -> None:
    nav = re.findall(r"^\s+- [^:]+: (\S+)\.md$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert len(nav) >= 17
    for page in nav:
        built = site / "index.html" if page == "index" else site / page / "index.html"
        assert built.is_file(), page
    assert not (site / "hooks.py").exists() and not (site / "draw_architecture.py").exists()


def headings(page: Path) -> list[str]:
    """The text of a built page's second-level headings."""
    return [text_of_html(h) for h in re.findall(r"<h2 id=[^>]*>(.*?)</h2>", page.read_text())]


def text_of_html(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("¶", "").split())


def test_speed_and_results_are_benchmarks_md(site: Path) -> None:
    """Every section of BENCHMARKS.md is on exactly one of the two pages, as it is written."""
    speed, results = (headings(site / name / "index.html") for name in ("speed", "results"))
    bench = (ROOT / "BENCHMARKS.md").read_text()
    sections = re.findall(r"^## (.+)$", bench, flags=re.M)
    assert sorted(sections) == sorted(h for h in speed + results if h in sections)
    assert not set(speed) & set(sections) & set(results)
    pages = text_of(site / "speed" / "index.html") + text_of(site / "results" / "index.html")
    assert "--8<--" not in pages


def test_a_guide_s_link_to_benchmarks_goes_to_its_page(site: Path) -> None:
    train = (site / "guides" / "train" / "index.html").read_text()
    assert 'href="../../results/#first-steps-the-seeds-model-learning-from-its-start"' in train


def test_the_api_reference_is_read_from_the_docstrings(site: Path) -> None:
    page = text_of(site / "reference" / "index.html")
    import aekit

    for name in aekit.__all__:
        assert f"aekit.{name}" in page, name
    first = aekit.train.__doc__.split("\n")[0].replace("``", "")
    assert "".join(first.split()) in "".join(page.split())  # the words, however marked up


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    for name in ("mkdocs.yml", "README.md", "BENCHMARKS.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "src").symlink_to(ROOT / "src")
    guide = tmp_path / "docs" / "guides" / "export.md"
    guide.write_text(guide.read_text() + "\nSee [the missing page](missing.md).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "missing.md" in done.stderr, done.stderr
