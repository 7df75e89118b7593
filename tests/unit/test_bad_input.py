"""Hostile and malformed input to every CLI: a clean refusal, never a traceback, hang or write.

Each case runs a CLI's ``main(argv)`` in-process (a few run as real processes at the end) from
an empty working directory and asserts: exit status 2 (or the documented safe success), one
message naming the key, the value and what is allowed, no traceback, a bounded message (an alias
bomb is never expanded into it), nothing written anywhere under the test's directory, and a
time limit (pytest-timeout). The classes follow issue 10: YAML reading, ``--set`` values,
bounded typed values, names and paths, memory and devices, analysis input and arguments.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.synthetic import simple_trial
from sparsity_tune import layout

pytestmark = pytest.mark.timeout(60)

MAX_MESSAGE = 4000  # every refusal is short; an expanded alias graph would be megabytes


def base_spec(data_root: Path) -> str:
    return (
        "name: t\n"
        f"dataset: {{root: {data_root}, train_limit: 200, test_limit: 100}}\n"
        "model: {arch: mlp, depth: 1, width: 16}\n"
        "train: {epochs: 1, threads: 1}\n"
    )


def bomb(levels: int = 9, prefix: str = "l") -> list[str]:
    """Billion laughs: 9**levels values from ~100 bytes per level."""
    lines = [f"{prefix}0: &{prefix}0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*{prefix}{i - 1}"] * 9)
        lines.append(f"{prefix}{i}: &{prefix}{i} [{refs}]")
    return lines


def flow_bomb(levels: int = 9) -> str:
    """The same bomb as one flow sequence, for a --set value."""
    parts = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "[" + ", ".join(parts) + "]"


BOMB = "\n".join(bomb()) + "\n"

# --------------------------------------------------------------------------- spec-level cases
# (id, spec: "BASE" + extra YAML | raw str | bytes, --set args, fragments the message must hold)
SPEC_CASES: list[tuple[str, str | bytes, list[str], list[str]]] = [
    ("empty-file", "", [], ["spec is empty", "at least a name"]),
    ("comments-only", "# nothing here\n\n", [], ["spec is empty"]),
    ("empty-document", "---\n", [], ["spec is empty"]),
    ("non-utf8", b"name: t\ntrain: {lr: \xff\xfe}\n", [], ["not UTF-8", "0xff"]),
    ("utf16", "name: t\n".encode("utf-16"), [], ["not UTF-8"]),
    ("duplicate-section", "BASE" + "train: {epochs: 5}\n", [], ["'train' appears twice"]),
    (
        "duplicate-key",
        "name: t\ntrain: {lr: 0.1, lr: 0.2}\n",
        [],
        ["'lr' appears twice", "keep one"],
    ),
    ("alias-bomb-epochs", BOMB + "train: {epochs: *l8}\n", [], ["more than 100,000 values"]),
    ("alias-bomb-name", BOMB + "name: *l8\n", [], ["more than 100,000 values"]),
    (
        "alias-bomb-grid",
        BOMB + "search: {parameters: {model.width: {values: *l8}}}\n",
        [],
        ["more than 100,000 values"],
    ),
    ("recursive-alias", "name: t\ntrain: &a {x: *a}\n", [], ["alias *a", "holds it"]),
    ("deep-nesting", "name: t\nx: " + "[" * 200 + "]" * 200 + "\n", [], ["nested more than 64"]),
    ("top-level-list", "- name\n- t\n", [], ["top level must be a mapping", "list"]),
    ("top-level-scalar", "just text\n", [], ["top level must be a mapping", "str"]),
    ("syntax-error", "name: t\ntrain: {epochs: [1,\n", [], ["not valid YAML", "line"]),
    ("control-char", "name: t\x07\n", [], ["not valid YAML", "#x0007"]),
    ("two-documents", "name: t\n---\nname: u\n", [], ["expected a single document"]),
    ("huge-file", "name: t\n#" + "x" * (1 << 20) + "\n", [], ["at most 1,048,576"]),
    (
        "python-tag",
        "name: !!python/object/apply:os.system ['touch PWNED']\n",
        [],
        ["not valid YAML", "python/object/apply"],
    ),
    ("unknown-top-key", "BASE" + "trian: {epochs: 3}\n", [], ["trian: unknown key"]),
    ("date-as-name", "name: 2024-01-01\n", [], ["name=datetime.date(2024, 1, 1)", "string"]),
    ("name-newline", 'name: "ok\\n"\n', [], ["name: ", "'ok\\n'", "letters, digits"]),
    ("name-traversal", "name: ../../x\n", [], ["'../../x'", "letters, digits"]),
    ("name-absolute", "name: /tmp/abs\n", [], ["'/tmp/abs'", "letters, digits"]),
    ("name-dotdot", "name: ..\n", [], ["'..'", "letters, digits"]),
    (
        "width-bool",
        "BASE" + "",
        ["--set", "model.width=true"],
        ["model.width=True", "whole number"],
    ),
    ("lr-inf-spec", "name: t\ntrain: {lr: .inf}\n", [], ["train.lr=inf", "finite"]),
    (
        "seed-1e30-spec",
        "name: t\ntrain: {seed: 1.0e+30}\n",
        [],
        ["train.seed=1e+30", "whole number"],
    ),
    (
        "wandb-sweep-params-list",
        "method: grid\nparameters: [1, 2]\n",
        [],
        ["parameters must be a mapping"],
    ),
    (
        "wandb-sweep-metric-list",
        "method: grid\nmetric: {name: [a]}\nparameters: {}\n",
        [],
        ["metric must be {name: val_acc"],
    ),
    ("wandb-sweep-bad-method", "method: [grid]\n", [], ["method=['grid']", "allowed: grid"]),
    (
        "grid-values-bools",
        "BASE" + "search: {parameters: {model.width: {values: [true, false]}}}\n",
        [],
        ["search.parameters.model.width", "True", "whole number"],
    ),
    (
        "range-inf",
        "BASE" + "search: {algorithm: random, parameters: {train.lr: {min: 0.1, max: .inf}}}\n",
        [],
        ["max=inf", "finite"],
    ),
    (
        "grid-too-big-memory",
        "BASE" + "search: {parameters: {model.hidden: {values: [[16], [1000000000]]}}}\n",
        [],
        ["model.hidden=[1000000000]", "needs about", "GiB", "in all"],
    ),
    (
        "range-too-big-memory",
        "BASE"
        + "search: {algorithm: random, parameters: {model.width: {min: 16, max: 2000000000}}}\n",
        [],
        ["model.width=2000000000", "needs about", "Allowed: a model that fits"],
    ),
    (
        "q-uniform-on-an-int-key",
        "BASE" + "search: {algorithm: random, parameters: "
        "{train.epochs: {distribution: q_uniform, min: 1, max: 4, q: 1}}}\n",
        [],
        ["search.parameters.train.epochs", "q_uniform", "int_uniform"],
    ),
    ("seeds-negative", "BASE" + "search: {seeds: [-1]}\n", [], ["search.seeds.0=-1", "0"]),
    ("seeds-bool", "BASE" + "search: {seeds: [true]}\n", [], ["search.seeds.0=True"]),
    (
        "seeds-too-big",
        "BASE" + "search: {seeds: [4294967296]}\n",
        [],
        ["search.seeds.0=4294967296", "4294967295"],
    ),
]

# (id, --set args, fragments): each applied on top of the valid base spec
SET_CASES: list[tuple[str, list[str], list[str]]] = [
    ("set-yaml-error", ["train.epochs=[1,"], ["--set 'train.epochs=[1,'", "not valid YAML"]),
    ("set-alias-bomb", [f"train.epochs={flow_bomb()}"], ["--set", "more than 100,000 values"]),
    ("set-no-equals", ["train.lr"], ["--set 'train.lr'", "KEY=VALUE"]),
    ("set-empty-key", ["=5"], ["--set '=5'", "KEY=VALUE"]),
    ("set-odd-key", ["train.lr\n=1"], ["--set 'train.lr\\n=1'", "dotted names"]),
    ("set-duplicate-yaml-key", ["train={lr: 1, lr: 2}"], ["--set", "'lr' appears twice"]),
    ("lr-inf", ["train.lr=.inf"], ["train.lr=inf", "finite number"]),
    ("lr-nan", ["train.lr=.nan"], ["train.lr=nan", "finite number"]),
    ("lr-zero", ["train.lr=0"], ["train.lr=0", "greater than 0"]),
    ("lr-negative", ["train.lr=-0.1"], ["train.lr=-0.1", "greater than 0"]),
    ("lr-too-big", ["train.lr=1e9"], ["train.lr=1000000000.0", "less than or equal to 10"]),
    ("lr-too-big-yaml11", ["train.lr=1.0e+9"], ["train.lr=1000000000.0", "less than or equal"]),
    ("lr-string", ["train.lr=fast"], ["train.lr='fast'", "a number"]),
    ("lr-bool", ["train.lr=true"], ["train.lr=True", "a number"]),
    ("width-bool", ["model.width=true"], ["model.width=True", "whole number"]),
    ("depth-float", ["model.depth=2.0"], ["model.depth=2.0", "whole number"]),
    ("depth-string", ['model.depth="3"'], ["model.depth='3'", "whole number"]),
    ("depth-too-big", ["model.depth=65"], ["model.depth=65", "less than or equal to 64"]),
    ("epochs-float", ["train.epochs=2.5"], ["train.epochs=2.5", "whole number"]),
    ("epochs-too-many", ["train.epochs=1000000"], ["train.epochs=1000000", "100000"]),
    ("batch-zero", ["train.batch_size=0"], ["train.batch_size=0", "greater than or equal to 1"]),
    ("threads-zero", ["train.threads=0"], ["train.threads=0", "greater than or equal to 1"]),
    ("seed-1e30", ["train.seed=1e30"], ["train.seed=1e+30", "whole number"]),
    ("seed-string", ["train.seed=abc"], ["train.seed='abc'", "whole number"]),
    ("seed-negative", ["train.seed=-1"], ["train.seed=-1", "greater than or equal to 0"]),
    ("seed-2-32", ["train.seed=4294967296"], ["train.seed=4294967296", "4294967295"]),
    ("momentum-one", ["train.momentum=1"], ["train.momentum=1", "less than 1"]),
    ("weight-decay-inf", ["train.weight_decay=.inf"], ["train.weight_decay=inf", "finite"]),
    ("val-fraction-nan", ["dataset.val_fraction=.nan"], ["dataset.val_fraction=nan", "finite"]),
    ("train-limit-zero", ["dataset.train_limit=0"], ["dataset.train_limit=0", "greater than 0"]),
    ("root-newline", ['dataset.root="a\\nb"'], ["dataset.root", "control character"]),
    ("root-nul", ['dataset.root="a\\0b"'], ["dataset.root", "control character"]),
    ("download-string", ["dataset.download=maybe"], ["dataset.download='maybe'", "boolean"]),
    ("hidden-empty", ["model.hidden=[]"], ["model.hidden", "non-empty"]),
    ("hidden-zero", ["model.hidden=[0]"], ["model.hidden.0=0", "greater than or equal to 1"]),
    ("hidden-bool", ["model.hidden=[true]"], ["model.hidden.0=True", "whole number"]),
    ("hidden-too-long", ["model.hidden=[" + ",".join(["4"] * 65) + "]"], ["model.hidden", "64"]),
    ("device-tpu", ["train.device=tpu"], ["train.device='tpu'", "cuda:N"]),
    ("device-unicode-digit", ["train.device=cuda:²"], ["train.device='cuda:²'", "cuda:N"]),
    ("device-newline", ['train.device="cuda:0\\n"'], ["train.device='cuda:0\\n'", "cuda:N"]),
    ("name-traversal-set", ["name=../../x"], ["name: '../../x'", "letters, digits"]),
    ("name-trailing-newline", ['name="x\\n"'], ["name: 'x\\n'", "letters, digits"]),
    ("name-empty", ['name=""'], ["name: ''", "letters, digits"]),
    ("name-too-long", ["name=" + "a" * 129], ["name: 'aaaa", "1-128 letters, digits"]),
    ("wandb-project-slash", ["wandb.project=a/b"], ["wandb.project: 'a/b'", "letters, digits"]),
    ("wandb-mode-public", ["wandb.mode=public"], ["wandb.mode='public'", "offline"]),
    ("wandb-tag-newline", ['wandb.tags=["a\\nb"]'], ["wandb.tags.0", "not allowed"]),
    ("cpu-inf", ["resources.cpu=.inf"], ["resources.cpu=inf", "finite"]),
    ("gpu-negative", ["resources.gpu=-1"], ["resources.gpu=-1", "greater than or equal to 0"]),
    ("num-samples-zero", ["search.num_samples=0"], ["search.num_samples=0", "1"]),
    ("objective-unknown", ["search.objectives={accuracy: max}"], ["accuracy", "metric name"]),
]

#: Memory: refused with the figure before anything is allocated. Far above any test machine.
MEMORY_CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "mlp-width-65536",
        ["model.depth=8", "model.width=65536"],
        ["model.width=65536", "needs about", "GiB", "optimizer state", "Allowed"],
    ),
    (
        "cnn-width-65536",
        ["model.arch=cnn", "model.depth=2", "model.width=65536"],
        ["model.arch='cnn'", "model.width=65536", "needs about", "activations"],
    ),
    ("hidden-1e9", ["model.hidden=[1000000000]"], ["model.hidden=[1000000000]", "needs about"]),
    (
        "huge-batch",
        [
            "dataset.name=cifar10",
            "dataset.train_limit=null",
            "model.arch=cnn",
            "model.width=4096",
            "train.batch_size=65536",
        ],
        ["train.batch_size=65536", "activations (batch"],
    ),
]

CLI_MODULE = {
    "train": "sparsity_tune.train",
    "launch": "sparsity_tune.launch",
    "slurm": "sparsity_tune.slurm",
}


def cli_argv(cli: str, spec: Path, extra: list[str]) -> list[str]:
    if cli == "train":
        return [str(spec), *extra]
    if cli == "launch":
        return [str(spec), "--dry-run", *extra]
    return ["submit", str(spec), "--dry-run", *extra]


def tree(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in root.rglob("*")
    )


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (default outputs: runs/, results/) and a private site config."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SPARSITY_TUNE_SLURM_SITE", raising=False)
    return work


def run_cli(cli: str, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    main = importlib.import_module(CLI_MODULE.get(cli, cli)).main
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse refusals
        rc = exit_.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_refused(
    rc: int, out: str, err: str, fragments: list[str], before: list[str], root: Path
) -> None:
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert len(err) < MAX_MESSAGE, f"{len(err)} characters"
    assert tree(root) == before, "the refusal wrote or removed files"
    assert not (root / "work" / "PWNED").exists()


def write_spec(tmp_path: Path, data_root: Path, body: str | bytes) -> Path:
    spec = tmp_path / "in" / "spec.yaml"
    spec.parent.mkdir(exist_ok=True)
    if isinstance(body, str) and body.startswith("BASE"):
        body = base_spec(data_root) + body[4:]
    if isinstance(body, bytes):
        spec.write_bytes(body)
    else:
        spec.write_text(body)
    return spec


@pytest.mark.parametrize("cli", ["train", "launch"])
@pytest.mark.parametrize(
    ("body", "extra", "fragments"), [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES]
)
def test_bad_spec_files(tmp_path, workdir, data_root, capsys, cli, body, extra, fragments):
    spec = write_spec(tmp_path, data_root, body)
    before = tree(tmp_path)
    rc, out, err = run_cli(cli, cli_argv(cli, spec, extra), capsys)
    assert_refused(rc, out, err, fragments, before, tmp_path)


@pytest.mark.parametrize("cli", ["train", "launch"])
@pytest.mark.parametrize(
    ("sets", "fragments"), [c[1:] for c in SET_CASES], ids=[c[0] for c in SET_CASES]
)
def test_bad_set_values(tmp_path, workdir, data_root, capsys, cli, sets, fragments):
    spec = write_spec(tmp_path, data_root, "BASE")
    extra = [a for s in sets for a in ("--set", s)]
    before = tree(tmp_path)
    rc, out, err = run_cli(cli, cli_argv(cli, spec, extra), capsys)
    assert_refused(rc, out, err, fragments, before, tmp_path)


@pytest.mark.parametrize("cli", ["train", "launch", "slurm"])
@pytest.mark.parametrize(
    ("sets", "fragments"), [c[1:] for c in MEMORY_CASES], ids=[c[0] for c in MEMORY_CASES]
)
def test_models_that_cannot_fit_are_refused_before_allocation(
    tmp_path, workdir, data_root, capsys, cli, sets, fragments
):
    spec = write_spec(tmp_path, data_root, "BASE")
    extra = [a for s in sets for a in ("--set", s)]
    before = tree(tmp_path)
    rc, out, err = run_cli(cli, cli_argv(cli, spec, extra), capsys)
    assert_refused(rc, out, err, fragments, before, tmp_path)


SLURM_CASES = [
    c
    for c in SPEC_CASES
    if c[0]
    in {
        "empty-file",
        "non-utf8",
        "duplicate-section",
        "alias-bomb-name",
        "name-traversal",
        "name-newline",
    }
] + [
    (c[0], "BASE", [a for s in c[1] for a in ("--set", s)], c[2])
    for c in SET_CASES
    if c[0] in {"set-yaml-error", "lr-inf", "width-bool", "seed-1e30", "name-trailing-newline"}
]


@pytest.mark.parametrize(
    ("body", "extra", "fragments"), [c[1:] for c in SLURM_CASES], ids=[c[0] for c in SLURM_CASES]
)
def test_slurm_submit_dry_run_refuses_bad_specs(
    tmp_path, workdir, data_root, capsys, body, extra, fragments
):
    spec = write_spec(tmp_path, data_root, body)
    before = tree(tmp_path)
    rc, out, err = run_cli("slurm", cli_argv("slurm", spec, extra), capsys)
    assert_refused(rc, out, err, fragments, before, tmp_path)


# --------------------------------------------------------------------------- train CLI only


def test_train_cuda_without_a_gpu(tmp_path, workdir, data_root, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = write_spec(tmp_path, data_root, "BASE")
    before = tree(tmp_path)
    rc, out, err = run_cli("train", [str(spec), "--set", "train.device=cuda"], capsys)
    assert_refused(
        rc, out, err, ["train.device='cuda'", "no CUDA device", "auto, cpu"], before, tmp_path
    )


def test_launch_cuda_with_no_gpu_in_resources(tmp_path, workdir, data_root, capsys):
    spec = write_spec(tmp_path, data_root, "BASE")
    before = tree(tmp_path)
    rc, out, err = run_cli(
        "launch", cli_argv("launch", spec, ["--set", "train.device=cuda"]), capsys
    )
    assert_refused(
        rc,
        out,
        err,
        ["train.device='cuda'", "resources.gpu=0", "resources.gpu > 0"],
        before,
        tmp_path,
    )


def test_train_out_naming_a_file(tmp_path, workdir, data_root, capsys):
    spec = write_spec(tmp_path, data_root, "BASE")
    target = tmp_path / "in" / "a-file"
    target.write_text("keep me\n")
    before = tree(tmp_path)
    rc, out, err = run_cli("train", [str(spec), "--out", str(target)], capsys)
    assert_refused(rc, out, err, ["--out", "a-file", "not a directory"], before, tmp_path)
    assert target.read_text() == "keep me\n"


def test_train_missing_dataset_writes_no_run_directory(tmp_path, workdir, data_root, capsys):
    """Data is loaded before anything is written: a failure leaves no half-made run dir."""
    spec = write_spec(tmp_path, data_root, "BASE")
    before = tree(tmp_path)
    rc, out, err = run_cli("train", [str(spec), "--set", "dataset.name=mnist"], capsys)
    assert_refused(
        rc, out, err, ["dataset.name='mnist'", "dataset.download: true"], before, tmp_path
    )
    assert not (workdir / "runs").exists()


def test_train_existing_run_is_untouched_when_the_new_spec_is_bad(
    tmp_path, workdir, data_root, capsys
):
    run = workdir / "runs" / "t"
    run.mkdir(parents=True)
    for name in (layout.RECORDS, layout.SUMMARY, layout.ERROR):
        (run / name).write_text("earlier run\n")
    spec = write_spec(tmp_path, data_root, "BASE")
    before = tree(tmp_path)
    rc, out, err = run_cli("train", [str(spec), "--set", "train.lr=.nan"], capsys)
    assert_refused(rc, out, err, ["train.lr=nan"], before, tmp_path)
    assert all((run / n).read_text() == "earlier run\n" for n in (layout.RECORDS, layout.SUMMARY))


def test_spec_path_that_is_a_fifo_does_not_hang(tmp_path, workdir, capsys):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    rc, _, err = run_cli("train", [str(fifo)], capsys)
    assert rc == 2 and "no such spec file" in err


def test_spec_file_name_that_is_not_a_name(tmp_path, workdir, capsys):
    spec = tmp_path / "my spec.yaml"
    spec.write_text("train: {epochs: 1}\n")
    before = tree(tmp_path)
    rc, out, err = run_cli("launch", [str(spec), "--dry-run"], capsys)
    assert_refused(rc, out, err, ["'my spec'", "add name: NAME"], before, tmp_path)


# --------------------------------------------------------------------------- analysis


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    root = tmp_path / "exp"
    for seed in range(2):
        simple_trial(root, seed=seed)
    simple_trial(root, seed=0, sparsity=0.5)
    (root / layout.SPEC).write_text("name: exp\n")
    return root


ANALYSIS_ARG_CASES: list[tuple[str, list[str], list[str]]] = [
    ("tolerance-nan", ["--tolerance", "nan"], ["--tolerance 'nan'", "finite number"]),
    ("tolerance-inf", ["--tolerance", "inf"], ["--tolerance 'inf'", "finite number"]),
    ("tolerance-1e400", ["--tolerance", "1e400"], ["--tolerance '1e400'", "finite"]),
    ("tolerance-negative", ["--tolerance", "-1"], ["--tolerance '-1'", "0 to 100"]),
    ("tolerance-text", ["--tolerance", "lots"], ["--tolerance 'lots'", "accuracy points"]),
    ("x-unknown", ["--x", "accuracy"], ["'accuracy'", "allowed:", "nonzero_params"]),
    ("y-unknown", ["--y", "acc\nx"], ["'acc\\nx'", "allowed:"]),
    ("wandb-mode-public", ["--wandb", "--wandb-mode", "public"], ["--wandb-mode", "'public'"]),
    ("wandb-entity-slash", ["--wandb", "--wandb-entity", "a/b"], ["'a/b'", "letters, digits"]),
    ("wandb-project-newline", ["--wandb", "--wandb-project", "p\n"], ["'p\\n'", "letters"]),
    ("wandb-flags-need-wandb", ["--wandb-mode", "online"], ["need --wandb"]),
]


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [c[1:] for c in ANALYSIS_ARG_CASES],
    ids=[c[0] for c in ANALYSIS_ARG_CASES],
)
def test_analysis_bad_arguments(tmp_path, experiment, capsys, extra, fragments):
    before = tree(tmp_path)
    rc, out, err = run_cli("analysis.__main__", [str(experiment), *extra], capsys)
    assert_refused(rc, out, err, fragments, before, tmp_path)


@pytest.mark.parametrize("kind", ["missing", "empty", "a-file", "uri", "no-trials-yet"])
def test_analysis_bad_directories(tmp_path, capsys, kind):
    target = tmp_path / "exp"
    if kind == "empty":
        target.mkdir()
    elif kind == "a-file":
        target.write_text("x")
    elif kind == "no-trials-yet":
        target.mkdir()
        (target / layout.SPEC).write_text("name: x\n")
    arg = "s3://bucket/exp" if kind == "uri" else str(target)
    before = tree(tmp_path)
    rc, out, err = run_cli("analysis.__main__", [arg, "--quiet"], capsys)
    assert_refused(rc, out, err, ["error:", "exp"], before, tmp_path)


@pytest.mark.parametrize("kind", ["out-is-a-file", "out-is-a-symlink", "analysis-is-a-symlink"])
def test_analysis_refuses_an_output_it_may_not_write(tmp_path, experiment, capsys, kind):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = [str(experiment), "--no-plots", "--quiet"]
    if kind == "out-is-a-file":
        (tmp_path / "file").write_text("keep\n")
        args += ["--out", str(tmp_path / "file")]
        fragments = ["not a directory"]
    elif kind == "out-is-a-symlink":
        (tmp_path / "link").symlink_to(elsewhere)
        args += ["--out", str(tmp_path / "link")]
        fragments = ["symbolic link"]
    else:
        (experiment / "analysis").symlink_to(elsewhere)
        fragments = ["analysis: a symbolic link", "--out DIR"]
    before = tree(tmp_path)
    rc, out, err = run_cli("analysis.__main__", args, capsys)
    assert_refused(rc, out, err, fragments, before, tmp_path)
    assert list(elsewhere.iterdir()) == []


# Damaged trial files: the documented safe success: exit 0, one warning naming the file, the
# trial counted as damaged, the other trials analysed.
def _non_utf8(d: Path) -> None:
    (d / layout.RECORDS).write_bytes(b'{"epoch": 1, "test_acc": 0.5}\n\xff\xfe\n')


def _config_string(d: Path) -> None:
    cfg = layout.read_json(d / layout.CONFIG)
    cfg["config"] = "not an object"
    layout.write_json(d / layout.CONFIG, cfg)


def _config_deep(d: Path) -> None:
    (d / layout.CONFIG).write_text('{"trial_id": "x", "config": ' + "[" * 5000 + "]" * 5000 + "}")


def _records_deep(d: Path) -> None:
    (d / layout.RECORDS).write_text('{"epoch": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n")


def _torn_middle(d: Path) -> None:
    lines = (d / layout.RECORDS).read_text().splitlines()
    (d / layout.RECORDS).write_text(lines[0][:10] + "\n" + "\n".join(lines[1:]) + "\n")


def _summary_list(d: Path) -> None:
    (d / layout.SUMMARY).write_text("[1, 2, 3]")


def _records_not_objects(d: Path) -> None:
    (d / layout.RECORDS).write_text("1\n2\n")


def _records_fifo(d: Path) -> None:
    (d / layout.RECORDS).unlink()
    os.mkfifo(d / layout.RECORDS)


def _records_huge(d: Path) -> None:
    with open(d / layout.RECORDS, "ab") as f:
        f.truncate((256 << 20) + 1)  # sparse: no disk used


def _params_wrong_type(d: Path) -> None:
    cfg = layout.read_json(d / layout.CONFIG)
    cfg["params"] = ["model.width"]
    layout.write_json(d / layout.CONFIG, cfg)


def _error_txt_directory(d: Path) -> None:
    (d / layout.SUMMARY).unlink()
    (d / layout.ERROR).mkdir()


DAMAGE = {
    "records-non-utf8": (_non_utf8, "not UTF-8"),
    "config-is-a-string": (_config_string, "config is a JSON str"),
    "config-deeply-nested": (_config_deep, "nested more than 32"),
    "records-deeply-nested": (_records_deep, "nested more than 32"),
    "records-torn-middle-line": (_torn_middle, "line 1 is not valid JSON"),
    "summary-is-a-list": (_summary_list, "not a JSON object"),
    "records-not-objects": (_records_not_objects, "are not JSON objects"),
    "records-fifo": (_records_fifo, "not a regular file"),
    "records-huge": (_records_huge, "at most 268,435,456"),
    "params-wrong-type": (_params_wrong_type, "params is a JSON list"),
    "error-txt-a-directory": (_error_txt_directory, "not a regular file"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_analysis_damaged_trial_files_are_one_warning(tmp_path, experiment, capsys, damage):
    import pandas as pd

    make, fragment = DAMAGE[damage]
    victim = sorted(p for p in experiment.iterdir() if p.is_dir())[0]
    make(victim)
    out = tmp_path / "out"
    rc, _, err = run_cli(
        "analysis.__main__", [str(experiment), "--out", str(out), "--no-plots", "--quiet"], capsys
    )
    assert rc == 0, err
    assert "Traceback" not in err
    warnings = [ln for ln in err.splitlines() if "warning:" in ln]
    assert len(warnings) == 1, err
    assert victim.name in warnings[0] and fragment in warnings[0], warnings[0]
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["status"] == "damaged").sum() == 1
    assert (trials["status"] == "finished").sum() == 2
    assert trials.loc[trials["status"] == "damaged", "error"].str.contains("damaged:").all()


SPEC_DAMAGE = {
    "spec-alias-bomb": ("\n".join(bomb()) + "\nname: *l8\n", "more than 100,000 values"),
    "spec-non-utf8": (b"name: \xff\n", "not UTF-8"),
    "spec-duplicate-key": ("name: a\nname: b\n", "appears twice"),
    "spec-name-newline": ('name: "x\\nrm -rf ~"\n', "not a valid name"),
}


@pytest.mark.parametrize("damage", list(SPEC_DAMAGE))
def test_analysis_damaged_spec_yaml_is_a_warning(tmp_path, experiment, capsys, damage):
    text, fragment = SPEC_DAMAGE[damage]
    spec = experiment / layout.SPEC
    spec.write_bytes(text) if isinstance(text, bytes) else spec.write_text(text)
    out = tmp_path / "out"
    rc, _, err = run_cli(
        "analysis.__main__", [str(experiment), "--out", str(out), "--no-plots", "--quiet"], capsys
    )
    assert rc == 0 and "Traceback" not in err
    assert fragment in err and len(err) < MAX_MESSAGE
    html = (out / "report.html").read_text()
    # the trials' own experiment name; nothing of the damaged spec.yaml reaches the report
    assert html.count("<title>synthetic: sparsity-tune analysis</title>") == 1
    assert html.count("rm -rf") == 0  # count(): pytest would diff a 4 MB string on failure


# --------------------------------------------------------------------------- real processes


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def test_as_processes_no_traceback_and_nothing_written(tmp_path, data_root, experiment):
    """A handful of the cases above as real processes (the in-process runs could hide an
    exception handler of pytest's)."""
    work = tmp_path / "work"
    work.mkdir()
    binary = tmp_path / "in" / "binary.yaml"
    binary.parent.mkdir()
    binary.write_bytes(b"name: t\n\x00\xff\xfe")
    bombed = tmp_path / "in" / "bomb.yaml"
    bombed.write_text(BOMB + "name: *l8\n")
    good = write_spec(tmp_path, data_root, "BASE")
    before = tree(tmp_path)
    cases = [
        (["sparsity_tune.train", str(good), "--set", "train.epochs=[1,"], "--set"),
        (["sparsity_tune.train", str(binary)], "not UTF-8"),
        (["sparsity_tune.launch", str(bombed), "--dry-run"], "more than 100,000 values"),
        (["sparsity_tune.train", str(good), "--set", "model.hidden=[1000000000]"], "needs about"),
        (["analysis", str(experiment), "--tolerance", "nan"], "finite number"),
    ]
    for args, fragment in cases:
        proc = _run(args, work)
        assert proc.returncode == 2, (args, proc.stderr)
        assert fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert tree(tmp_path) == before
