"""The README documents every config key and every metric name (docs cannot drift silently)."""

from __future__ import annotations

from pathlib import Path

from sparsity_tune import metrics
from sparsity_tune.config import trial_config

REPO = Path(__file__).resolve().parents[2]


def test_readme_names_every_config_key_and_metric():
    readme = (REPO / "README.md").read_text()
    missing = [k for k in trial_config().flat() if f"`{k}`" not in readme]
    missing += [k for k in (*metrics.RECORD_KEYS, *metrics.SUMMARY_KEYS) if f"`{k}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"
