"""Run one trial from a spec's base config: ``python -m sparsity_tune.train SPEC.yaml``.

Writes the trial-directory files of :mod:`sparsity_tune.layout` into ``--out`` (records appended
as each epoch ends, so a crash loses nothing already trained) and prints one line per epoch.
Bad specs exit with status 2 and one message naming the key, the value and what is allowed.

Nothing is written (no directory made, no old file removed) until the spec is valid, the device
exists, the estimated memory fits (:mod:`sparsity_tune.trial.budget`) and the data and model are
built. The default output directory is ``runs/<name>`` with the spec's validated name (one safe
path component), so a spec can never point the CLI outside ``runs/``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from sparsity_tune import layout
from sparsity_tune.keys import ConfigError, add_set_option, config_id, parse_overrides
from sparsity_tune.metrics import M
from sparsity_tune.safe_yaml import brief
from sparsity_tune.sweep.resolve import one_trial
from sparsity_tune.trial import budget

#: Files of an earlier run in the same directory that this run replaces.
STALE = (layout.RECORDS, layout.ERROR, layout.SUMMARY)


def _progress(epochs: int):
    def report(r: dict) -> None:
        print(
            f"epoch {r[M.epoch]:>3}/{epochs}  train_loss {r[M.train_loss]:.4f}  "
            f"val_acc {r[M.val_acc]:.4f}  test_acc {r[M.test_acc]:.4f}  "
            f"sparsity {r[M.sparsity]:.3f} (target {r[M.target_sparsity]:.3f})  "
            f"{r[M.train_time_s]:.2f}s train + {r[M.eval_time_s]:.2f}s eval",
            flush=True,
        )

    return report


def output_dir(out: Path | None, name: str) -> Path:
    """``--out`` or ``runs/<name>``; refused when it names something that is not a directory."""
    path = out if out is not None else Path("runs") / name
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"--out {brief(str(path))}: exists and is not a directory; allowed: a new or "
            "existing directory"
        )
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sparsity_tune.train", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "spec", help="a search-space YAML; its base config (dataset/model/train/pruning) is run"
    )
    add_set_option(ap, "override a key, e.g. --set pruning.final_sparsity=0.9 (repeatable)")
    ap.add_argument(
        "--out", type=Path, default=None, help="output directory (default runs/<spec name>)"
    )
    args = ap.parse_args(argv)
    try:
        name, cfg = one_trial(args.spec, parse_overrides(args.overrides))
        out = output_dir(args.out, name)
        budget.check_fits(cfg)  # the device exists and the model fits, before any allocation
        from sparsity_tune.trial.trainer import Trainer  # torch only once the spec is valid

        trainer = Trainer(cfg)  # data loaded, model built: only now is anything written
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in STALE:
            (out / stale).unlink(missing_ok=True)
        layout.write_json(
            out / layout.CONFIG,
            {
                "trial_id": out.name,
                "experiment": name,
                "seed": cfg.train.seed,
                "config_id": config_id(cfg),
                "params": {},
                "config": cfg.model_dump(mode="json"),
            },
        )
    except OSError as err:
        print(f"error: --out {brief(str(out))}: cannot be written ({err})", file=sys.stderr)
        return 2
    print(
        f"{name}: {cfg.model.arch} ({cfg.model.preset or f'depth {cfg.model.depth}, width {cfg.model.width}'}) "
        f"on {cfg.dataset.name}, pruning {cfg.pruning.method}, torch threads {trainer.threads}"
        f"{'' if cfg.train.threads else ' (default: CPUs less the load average)'}; "
        f"writing {out}/",
        flush=True,
    )
    try:
        show = _progress(cfg.train.epochs)

        def report(record: dict) -> None:
            layout.append_record(out, record)
            show(record)

        summary = trainer.run(report)
    except ConfigError as err:  # e.g. dataset files missing: a user error, not a crash
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception:
        (out / layout.ERROR).write_text(traceback.format_exc())
        raise
    layout.write_json(out / layout.SUMMARY, summary)
    if cfg.train.until is not None:
        how = (
            "every segment ended on its plateau"
            if summary[M.all_converged]
            else "a segment reached its cap still improving"
        )
        print(f"stopped after {summary[M.epochs]} of at most {cfg.train.epochs} epochs: {how}")
    print(
        f"done: test_acc {summary[M.final_test_acc]:.4f} at sparsity "
        f"{summary[M.final_sparsity]:.3f}; best val {summary[M.best_val_acc]:.4f} "
        f"(test {summary[M.test_acc_at_best_val]:.4f}); {summary[M.total_time_s]:.1f}s; "
        f"inference at batch 256 {summary[M.infer_ms_dense_b256]:.2f} ms dense, "
        f"{summary[M.infer_ms_b256]:.2f} ms {summary[M.deploy_format]} -> {out}/summary.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
