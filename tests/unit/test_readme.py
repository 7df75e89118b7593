"""The README and docs/ document every config key and every metric name, their links resolve,
and the README stays a front door (docs cannot drift silently)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sparsity_tune import metrics
from sparsity_tune.keys import ConfigError
from sparsity_tune.trial.config import trial_config

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 300

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a ``# comment`` in a shell block is no heading)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped except hyphens and spaces
    (backticks too), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (GitHub numbers repeats: ``x``, ``x-1``, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text()).splitlines():
        m = re.match(r"^#{1,6} (.+)$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def section(text: str, heading: str) -> str:
    """From ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(f"{heading}\n")
    rest = text[start + len(heading) :]
    ends = [m.start() for m in re.finditer(r"^(#+) ", rest, re.M) if len(m.group(1)) <= len(level)]
    return rest[: min(ends)] if ends else rest


def test_slug_follows_githubs_rule():
    assert slug("The `search` section") == "the-search-section"
    assert slug("W&B") == "wb"
    assert slug("The demo's answers") == "the-demos-answers"
    assert slug("Adaptive seeds: where the budget goes, and intervals") == (
        "adaptive-seeds-where-the-budget-goes-and-intervals"
    )
    assert (
        slug("Sweeps: `python -m sparsity_tune.launch`") == "sweeps-python--m-sparsity_tunelaunch"
    )


def test_docs_name_every_config_key_and_metric():
    text = "\n".join(p.read_text() for p in PAGES)
    missing = [k for k in trial_config().flat() if f"`{k}`" not in text]
    missing += [k for k in (*metrics.RECORD_KEYS, *metrics.SUMMARY_KEYS) if f"`{k}`" not in text]
    assert not missing, f"README.md and docs/*.md do not document: {missing}"


def test_docs_metric_tables_list_exactly_the_registry():
    """The key columns of docs/metrics.md's tables name each registry metric once, and nothing
    else (besides the per-layer ``layer_sparsity/<param>`` family)."""
    page = section((DOCS / "metrics.md").read_text(), "# Metrics")
    listed = [
        name
        for line in page.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([^`]+)`", line.split("|")[1])
    ]
    expected = [*metrics.REGISTRY, f"{metrics.LAYER_SPARSITY_PREFIX}<param>"]
    assert sorted(listed) == sorted(expected)


def test_docs_layout_lists_every_module():
    """docs/layout.md names every module and subpackage of sparsity_tune."""
    page = (DOCS / "layout.md").read_text()
    pkg = REPO / "sparsity_tune"
    names = {p.name for p in pkg.glob("*.py")} | {
        f"{p.name}/" for p in pkg.iterdir() if (p / "__init__.py").exists()
    }
    names |= {p.name for sub in pkg.iterdir() if sub.is_dir() for p in sub.glob("*.py")}
    names |= {p.name for p in pkg.rglob("*.tmpl")}
    names.discard("__init__.py")
    missing = sorted(n for n in names if n not in page)
    assert not missing, f"docs/layout.md does not list: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    """Every relative link (and image) of the README and docs/ points at an existing file, and a
    ``#anchor`` at an existing heading of the target Markdown file."""
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_readme_is_a_short_front_door_with_the_two_commands_first():
    """Under 300 lines, and ``make demo`` and ``make test`` come in the first section, right
    after the introduction, before any other section."""
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < README_MAX_LINES
    fenced, sections = False, []
    for i, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("## "):
            sections.append(i)
    first = "\n".join(lines[sections[0] : sections[1]])
    before = "\n".join(lines[: sections[0]])
    for command in ("make demo", "make test"):
        assert command in first and command not in before, command


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    unlinked = [p.name for p in DOCS.glob("*.md") if f"](docs/{p.name}" not in readme]
    assert not unlinked, f"README.md links no page: {unlinked}"


@pytest.mark.parametrize("key", ["model.widht", "model.zzzzzz"])
def test_unknown_key_messages_point_at_the_config_page(key: str):
    """With or without a did-you-mean, the message names docs/config.md, which exists."""
    with pytest.raises(ConfigError) as err:
        trial_config({}, {key: 3})
    assert f"{key}: unknown key" in str(err.value)
    assert "see docs/config.md)" in str(err.value)
    assert (REPO / "docs" / "config.md").is_file()
