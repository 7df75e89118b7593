"""The one console command: ``sparsity-tune train|launch|analysis|slurm ...``.

Each subcommand is the matching ``python -m`` entry point (``sparsity_tune.train``,
``sparsity_tune.launch``, ``analysis``, ``sparsity_tune.slurm``) with the same arguments; this
module only dispatches, importing nothing heavy before it knows which one runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("sparsity_tune.train", "run one trial from a spec's base config"),
    "launch": ("sparsity_tune.sweep.launch", "run a sweep on Ray Tune"),
    "analysis": ("analysis.__main__", "Pareto fronts, tables, plots and a report of experiments"),
    "slurm": ("sparsity_tune.cluster.slurm", "submit, follow and cancel sweeps on SLURM"),
}


def _usage() -> str:
    rows = "\n".join(f"  {name:<9} {what}" for name, (_, what) in COMMANDS.items())
    return (
        "usage: sparsity-tune COMMAND [ARGS...]\n\ncommands:\n"
        f"{rows}\n\n`sparsity-tune COMMAND --help` shows a command's arguments."
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    import importlib

    entry: Callable[[list[str]], int] = importlib.import_module(COMMANDS[name][0]).main
    return entry(rest)


if __name__ == "__main__":
    sys.exit(main())
