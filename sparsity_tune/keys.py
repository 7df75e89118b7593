"""The project's shared vocabulary of keys: dotted keys, ``--set`` overrides, names, a
configuration's identity, and the one way a bad value is reported (:class:`ConfigError`, one line
per problem naming the key, the value and what is allowed).

Every layer uses these (the trial schema in :mod:`sparsity_tune.trial.config`, the sweep's spec,
the analysis, SLURM), so they live below all of them and know no schema.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import types
import typing
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ValidationError

from sparsity_tune import safe_yaml


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message says what and how."""


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating the levels on the way."""
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{key}: '{p}' is a value, not a section")
        d = nxt
    d[parts[-1]] = value


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """The repeatable ``--set KEY=VALUE`` of every CLI, read by :func:`parse_overrides`."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


KEY_RE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
#: An experiment name becomes one directory (results/NAME, runs/NAME) and a W&B group: one safe
#: path component ("." and ".." cannot match). Always ``fullmatch``: with ``re.match`` and ``$``
#: a trailing newline gets through.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
NAME_RULE = "1-128 letters, digits and _.+-, starting with a letter or digit"


#: Control characters (newline, tab, NUL, escape, DEL): a value that holds one could start a new
#: line in a log, a path or a shell script.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def control_chars(value: str) -> list[str]:
    """The control characters in ``value``, each once, as Python writes them (``'\\n'``)."""
    return sorted({repr(c) for c in CONTROL_RE.findall(value)})


def check_name(name: Any, key: str = "name") -> str:
    """``name`` if it is one safe path component (see :data:`NAME_RE`), else ConfigError."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{key}={safe_yaml.brief(name)}: not allowed; use {NAME_RULE}")
    return name


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train.lr=0.01", "model.hidden=[64,32]"]`` → dotted dict, values parsed as YAML.

    Values go through the same guarded YAML reader as spec files; a YAML error is a
    :class:`ConfigError` naming the ``--set``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip(" ")  # not \n or \t: a key holding them is refused below
        shown = safe_yaml.brief(pair)
        if not sep or not key:
            raise ConfigError(f"--set {shown}: expected KEY=VALUE, e.g. --set train.lr=0.01")
        if not KEY_RE.fullmatch(key):
            raise ConfigError(
                f"--set {shown}: the key must be dotted names of letters, digits and _ "
                "(e.g. train.lr)"
            )
        try:
            out[key] = safe_yaml.loads(raw, f"--set {shown}")
        except safe_yaml.YamlInputError as err:
            raise ConfigError(str(err)) from None
    return out


def show_key(key: str) -> str:
    """Keys come from user files: print odd ones quoted (a newline must not start a new line)."""
    return key if KEY_RE.fullmatch(key) and len(key) <= 200 else safe_yaml.brief(key)


#: Location parts pydantic adds for union members and validators (not keys of the config).
_TYPE_TAG = re.compile(r"int|float|str|bool|none|.*[\[(].*")


def _allowed(e: Any) -> str:
    """What is allowed, in words, for one pydantic error."""
    msg = e["msg"].removeprefix("Value error, ")
    kind = e["type"]
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return "a whole number (not a bool, float or string)"
    if kind in ("float_type", "float_parsing"):
        return "a number (not a bool or string)"
    if kind == "finite_number":
        return "a finite number (not .inf or .nan)"
    return msg.removeprefix("Input should be ")


def error_key(e: Any, prefix: str = "") -> str:
    """The dotted config key of one pydantic error (union-member tags left out), unquoted."""
    loc = ".".join(str(x) for x in e["loc"] if not _TYPE_TAG.fullmatch(str(x)))
    return f"{prefix}{loc}".strip(".")


def _keys_beside(model: type[BaseModel], parts: list[str]) -> list[str]:
    """The keys a config model allows at the place of ``parts[-1]`` (walks nested models,
    optional ones and ``dict[str, Model]`` values); [] where the place is free-form."""
    here: Any = model
    for part in parts[:-1]:
        fields = getattr(here, "model_fields", None)
        if fields is not None:
            if part not in fields:
                return []
            here = fields[part].annotation
        elif typing.get_origin(here) is dict:
            here = typing.get_args(here)[1]
        else:
            return []
        while typing.get_origin(here) in (typing.Union, types.UnionType):
            here = next((a for a in typing.get_args(here) if a is not type(None)), None)
    return list(getattr(here, "model_fields", {}))


def did_you_mean(model: type[BaseModel] | None, key: str) -> str:
    """``"did you mean model.width?"`` for an unknown ``model.widht`` (difflib's closest
    allowed key at the same place), else ``""``."""
    if model is None:
        return ""
    parts = key.split(".")
    close = difflib.get_close_matches(parts[-1], _keys_beside(model, parts), n=1, cutoff=0.6)
    return f"did you mean {'.'.join([*parts[:-1], close[0]])}?" if close else ""


def set_by(key: str, given: Collection[str], unknown: bool = False) -> bool:
    """Whether ``key`` (or the section holding it) was set with ``--set``; an ``unknown`` key
    also when ``--set`` made it as the section of the key it set (``--set serch.x=1``)."""
    return any(
        key == g or key.startswith(f"{g}.") or (unknown and g.startswith(f"{key}.")) for g in given
    )


def format_validation_error(
    err: ValidationError,
    prefix: str = "",
    *,
    model: type[BaseModel] | None = None,
    given: Collection[str] = (),
) -> str:
    """One line per bad key: the dotted key, the value given (bounded, see ``brief``) and what is
    allowed; the members of a union (``int | float``) are joined with "or" on one line.

    ``model`` (the validated class) lets an unknown key suggest the closest allowed one;
    ``given`` (the dotted keys of ``--set``) names ``--set`` as the source of a bad key set there.
    """
    by_key: dict[str, list[str]] = {}
    for e in err.errors():
        dotted = error_key(e, prefix)
        key = show_key(dotted)
        unknown = e["type"] == "extra_forbidden"
        if set_by(dotted, given, unknown):
            key = f"--set {key}"
        value = safe_yaml.brief(e.get("input"))
        if unknown:
            hint = did_you_mean(model, error_key(e))
            line = f"{key}: unknown key" + (
                f", {hint} (see docs/config.md)"
                if hint
                else " (check the spelling; see docs/config.md)"
            )
        elif e["type"] in ("value_error", "assertion_error") or "input" not in e:
            line = f"{key}: {_allowed(e)}" if key else _allowed(e)
        else:
            head = f"{key}={value}: allowed: "
            if by_key.get(key) and by_key[key][-1].startswith(head):  # another union member
                by_key[key][-1] += f"; or {_allowed(e)}"
                continue
            line = head + _allowed(e)
        by_key.setdefault(key, []).append(line)
    lines = [line for group in by_key.values() for line in dict.fromkeys(group)]
    return cap_lines(lines)


def cap_lines(lines: list[str], most: int = 20) -> str:
    """Join problem lines, each and their number bounded (a message never floods a terminal)."""
    shown = [safe_yaml.cap(line) for line in lines[:most]]
    if len(lines) > most:
        shown.append(f"... and {len(lines) - most} more problem(s)")
    return "\n".join(shown)


#: Settings that do not make a different configuration, and why: where the data lives, how
#: many CPU threads run it, how evaluation is batched. Seeds of one configuration differ only in
#: ``train.seed`` (:data:`SEED_KEY`, never part of the identity either). ``train.device`` stays
#: in it: a CPU and a GPU run of the same settings differ in every measured cost (time, memory,
#: latency), so pooling them as seeds would blur those figures.
NOT_IDENTITY: dict[str, str] = {
    "dataset.root": "where the data files are, not what they hold",
    "dataset.download": "whether missing data files may be downloaded",
    "train.threads": "CPU threads run the same steps (a trial's CPU share sets them)",
    "train.eval_batch_size": "evaluation batches see the same samples with the same weights",
}
SEED_KEY = "train.seed"
#: Sizes and counts of every config: 2**31-1 keeps every product in int64 arithmetic far from
#: overflow; the memory check (:mod:`sparsity_tune.trial.budget`) refuses what does not fit long
#: before. Here, not in the trial config, so a pruning piece's own keys can use it.
MAX_COUNT = 2**31 - 1
#: Keys added after identities were first saved, with their defaults: left out of the identity
#: while at that default, so a ``config.json`` written before they existed keeps its id.
LATER_DEFAULTS: dict[str, Any] = {
    "pruning.control": "none",
    "pruning.distribution": "scope",
    "pruning.score_batch_size": 100,
    "pruning.score_batches": 1,
    "pruning.synflow_iterations": 100,
    "pruning.update_every": 100,
    "pruning.end_step": None,
    "pruning.drop_fraction": 0.3,
}
#: Length of :func:`config_id` (hex digits of a SHA-256).
CONFIG_ID_LENGTH = 12


def identity_keys(keys: Any, *, dense: bool = False) -> list[str]:
    """The dotted keys among ``keys`` that make a configuration: not the seed, not
    :data:`NOT_IDENTITY`; with ``dense`` (a run whose final network has no pruned weight) not the
    ``pruning.*`` settings either, which never acted: a grid of granularity x sparsity that
    includes sparsity 0 runs one dense configuration, not one per granularity."""
    return [
        k
        for k in keys
        if k != SEED_KEY and k not in NOT_IDENTITY and not (dense and k.startswith("pruning."))
    ]


def config_id(config: BaseModel | dict[str, Any], *, dense: bool = False) -> str:
    """A configuration's identity: a stable hash of its settings without the seed and the keys
    of :data:`NOT_IDENTITY`, so the seeds of one configuration share it, and two experiments
    pool trials only where every result-changing setting is equal. ``dense``: see
    :func:`identity_keys` (known only once the run finished; the analysis applies it).

    ``config`` is a :class:`~sparsity_tune.trial.config.TrialConfig` or its nested JSON form
    (``config.json``'s ``config``: old trial directories get the same id as new ones of the same
    settings).

    >>> config_id({"train": {"lr": 0.1, "seed": 0}}) == config_id({"train": {"lr": 0.1, "seed": 7}})
    True
    """
    nested = config.model_dump(mode="json") if isinstance(config, BaseModel) else config
    return settings_id(flatten(nested), dense=dense)


def settings_id(flat: dict[str, Any], *, dense: bool = False) -> str:
    """:func:`config_id` of settings given as dotted keys (the keys that are no part of the
    identity are left out here)."""
    settings = {
        k: flat[k]
        for k in sorted(identity_keys(flat, dense=dense))
        if k not in LATER_DEFAULTS or flat[k] != LATER_DEFAULTS[k]
    }
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:CONFIG_ID_LENGTH]


def is_config_id(value: Any) -> bool:
    """True for a string shaped like :func:`config_id`'s (a ``config.json`` may be anyone's)."""
    return (
        isinstance(value, str)
        and len(value) == CONFIG_ID_LENGTH
        and all(c in "0123456789abcdef" for c in value)
    )
