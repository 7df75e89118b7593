"""The README documents every config key and every metric name (docs cannot drift silently)."""

from __future__ import annotations

import re
from pathlib import Path

from sparsity_tune import metrics
from sparsity_tune.trial.config import trial_config

REPO = Path(__file__).resolve().parents[2]


def test_readme_names_every_config_key_and_metric():
    readme = (REPO / "README.md").read_text()
    missing = [k for k in trial_config().flat() if f"`{k}`" not in readme]
    missing += [k for k in (*metrics.RECORD_KEYS, *metrics.SUMMARY_KEYS) if f"`{k}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_readme_metric_tables_list_exactly_the_registry():
    """The key columns of the Metrics section's tables name each registry metric once, and
    nothing else (besides the per-layer ``layer_sparsity/<param>`` family)."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Metrics") :]
    section = section[: section.index("\n#", 1)]
    listed = [
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([^`]+)`", line.split("|")[1])
    ]
    expected = [*metrics.REGISTRY, f"{metrics.LAYER_SPARSITY_PREFIX}<param>"]
    assert sorted(listed) == sorted(expected)


def test_readme_layout_lists_every_module():
    """The README's Layout section names every module and subpackage of sparsity_tune."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Layout") :]
    section = section[: section.index("\n## ")] if "\n## " in section[3:] else section
    pkg = REPO / "sparsity_tune"
    names = {p.name for p in pkg.glob("*.py")} | {
        f"{p.name}/" for p in pkg.iterdir() if (p / "__init__.py").exists()
    }
    names |= {p.name for sub in pkg.iterdir() if sub.is_dir() for p in sub.glob("*.py")}
    names |= {p.name for p in pkg.rglob("*.tmpl")}
    names.discard("__init__.py")
    missing = sorted(n for n in names if n not in section)
    assert not missing, f"README Layout section does not list: {missing}"
