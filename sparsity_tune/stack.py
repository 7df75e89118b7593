"""The software stack behind a figure: the versions of the packages that decide the results.

"Repeat exactly" holds on the same machine with the same versions (oneDNN may differ in the last
digits across CPUs), so every experiment saves them in ``launch.json`` and the report prints
them. Read from the installed distributions' metadata (:mod:`importlib.metadata`): nothing is
imported, so this costs milliseconds.
"""

from __future__ import annotations

import platform
from importlib import metadata

#: The distributions whose versions can change a trial's numbers or the sweep's decisions.
PACKAGES = ("torch", "ray", "optuna", "wandb", "pandas", "numpy", "sparsity-tune")


def versions() -> dict[str, str]:
    """``{"python": "3.11.7", "torch": "2.14.1", ...}``; ``"absent"`` for one not installed."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def differences(saved: dict[str, str], now: dict[str, str]) -> list[str]:
    """``"optuna 4.5.0 -> 5.1.0"`` for each package whose version changed (sorted by name)."""
    return [
        f"{k} {saved[k]} -> {now.get(k, 'absent')}"
        for k in sorted(saved)
        if saved[k] != now.get(k, "absent")
    ]


def describe(v: dict[str, str]) -> str:
    """One line for a report header: ``python 3.11.7, torch 2.14.1, ...``."""
    return ", ".join(f"{k} {v[k]}" for k in ("python", *PACKAGES) if k in v)
