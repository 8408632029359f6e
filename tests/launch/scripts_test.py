"""launch/ scripts: syntax, the commands their dry runs print, and (with fake gcloud, srun,
scontrol and python on PATH) that arguments arrive intact and preemption requeues the job."""

import glob
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from support import REPO

LAUNCH = os.path.join(REPO, "launch")
TPU_VM = os.path.join(LAUNCH, "tpu_vm.sh")
SLURM = os.path.join(LAUNCH, "slurm_gpu.sbatch")
DISTRIBUTED = "--config.distributed.initialize=True"
# An argument that needs quoting on its way through gcloud's --command and a remote shell.
TRICKY = '--config.run_name=it\'s a "run" $HOME'


def _env(extra=None):
    """This process's environment without the settings the scripts read, plus ``extra``."""
    own = ("TPU_NAME", "ZONE", "PROJECT", "DRY_RUN")
    env = {
        k: v for k, v in os.environ.items() if not (k in own or k.startswith(("PRIMUS_", "SLURM_")))
    }
    return {**env, **(extra or {})}


def _bash(script, *args, env=None, **kw):
    return subprocess.run(
        ["bash", script, *args], env=_env(env), capture_output=True, text=True, timeout=60, **kw
    )


def _fake(path, body):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/usr/bin/env bash\n" + body)
    os.chmod(path, 0o755)


@pytest.mark.parametrize(
    "script", sorted([*glob.glob(os.path.join(LAUNCH, "*.sh")), SLURM]), ids=os.path.basename
)
def test_bash_syntax(script):
    res = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _gcloud_calls(stdout):
    calls = [shlex.split(line) for line in stdout.splitlines() if line.startswith("gcloud ")]
    for argv in calls:
        assert argv[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]
        assert "--worker=all" in argv
    return calls


def _opt(argv, name):
    return argv[argv.index(name) + 1]


def test_tpu_vm_dry_run_sets_up_and_runs_on_all_workers():
    env = {
        "TPU_NAME": "my-tpu",
        "ZONE": "us-central2-b",
        "PROJECT": "my-project",
        "PRIMUS_REPO_URL": "https://example.com/me/primus_jax.git",
    }
    res = _bash(
        TPU_VM,
        "--branch",
        "dev",
        "--env",
        "TFDS_DATA_DIR=/mnt/shared/tfds",
        "--dry-run",
        "--",
        "--workdir=/mnt/shared/runs/hapt",
        TRICKY,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    setup, run = _gcloud_calls(res.stdout)
    for argv in (setup, run):
        assert argv[5] == "my-tpu"
        assert _opt(argv, "--zone") == "us-central2-b"
        assert _opt(argv, "--project") == "my-project"
    remote = _opt(setup, "--command")
    assert (
        "git clone --quiet --depth=1 --branch dev https://example.com/me/primus_jax.git" in remote
    )
    assert "git -C primus_jax fetch --quiet --depth=1 origin dev" in remote
    assert "PRIMUS_EXTRAS=text,hapt,gcs bash launch/bootstrap.sh" in remote
    assert "-c constraints.txt 'jax[tpu]'" in remote
    words = shlex.split(_opt(run, "--command"))
    assert words[:3] == ["cd", "primus_jax", "&&"]
    job = words[3:]
    assert job[:2] == ["env", "TFDS_DATA_DIR=/mnt/shared/tfds"]
    assert job[2:] == [
        ".venv/bin/python",
        "-m",
        "primus_jax.main",
        "--config=configs/primus_hapt.py",
        "--workdir=/mnt/shared/runs/hapt",
        TRICKY,
        DISTRIBUTED,
    ]


def test_tpu_vm_flags_beat_env_and_keep_the_users_config():
    env = {"TPU_NAME": "env-tpu", "ZONE": "env-zone", "DRY_RUN": "1"}
    res = _bash(
        TPU_VM,
        *("--tpu", "flag-tpu", "--zone", "flag-zone", "--no-setup", "--detach"),
        *("--", "--config=configs/smoke.py", "--workdir=/mnt/shared/w"),
        "--config.distributed.initialize=False",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    (run,) = _gcloud_calls(res.stdout)
    assert run[5] == "flag-tpu" and _opt(run, "--zone") == "flag-zone"
    assert "--project" not in run  # gcloud's default project
    remote = _opt(run, "--command")
    assert "nohup" in remote and "logs/tpu_vm.log" in remote
    assert "--config=configs/smoke.py" in remote and "primus_hapt" not in remote
    assert "initialize=False" in remote and DISTRIBUTED not in remote


@pytest.mark.parametrize(
    "env, args, message",
    [
        ({"ZONE": "z"}, ["--", "--workdir=w"], "TPU_NAME"),
        ({"TPU_NAME": "t"}, ["--", "--workdir=w"], "ZONE"),
        ({"TPU_NAME": "t", "ZONE": "z"}, ["--", "--workdir=w"], "PRIMUS_REPO_URL"),
        ({"TPU_NAME": "t", "ZONE": "z"}, ["--no-setup", "--", "--config=c"], "--workdir"),
        ({"TPU_NAME": "t", "ZONE": "z"}, ["--bogus"], "unknown option"),
        ({"TPU_NAME": "t", "ZONE": "z"}, ["--env", "oops"], "KEY=VALUE"),
    ],
)
def test_tpu_vm_refuses_incomplete_invocations(env, args, message):
    res = _bash(TPU_VM, "--dry-run", *args, env=env)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "gcloud" not in res.stdout


def _fake_gcloud_env(tmp_path, home, **extra):
    """A gcloud on PATH that runs its ``--command`` under sh in ``home`` (the "TPU worker"),
    and the environment tpu_vm.sh needs."""
    _fake(
        str(tmp_path / "bin/gcloud"),
        'while [[ $1 != --command ]]; do shift; done\ncd "$FAKE_HOME" && sh -c "$2"\n',
    )
    return {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "FAKE_HOME": str(home),
        "TPU_NAME": "t",
        "ZONE": "z",
        **extra,
    }


def test_tpu_vm_arguments_reach_the_workers_intact(tmp_path):
    """Runs the real (not dry) path with a gcloud that executes --command in a fake home."""
    home, log = tmp_path / "home", tmp_path / "argv.txt"
    _fake(str(home / "primus_jax/.venv/bin/python"), f'printf "%s\\n" "$@" > {log}\n')
    env = _fake_gcloud_env(tmp_path, home)
    res = _bash(TPU_VM, "--no-setup", "--", "--workdir=/w", TRICKY, env=env)
    assert res.returncode == 0, res.stderr
    argv = log.read_text().splitlines()
    main = ["-m", "primus_jax.main", "--config=configs/primus_hapt.py", "--workdir=/w"]
    assert argv == [*main, TRICKY, DISTRIBUTED]


def test_tpu_vm_setup_clones_once_then_updates(tmp_path):
    """The setup command under a POSIX sh, with a git whose clone makes a fake checkout."""
    home, log = tmp_path / "home", tmp_path / "log"
    home.mkdir()
    _fake(
        str(tmp_path / "bin/git"),
        f"""echo "git $*" >> {log}
[[ $1 == clone ]] || exit 0
d="${{@: -1}}"
mkdir -p "$d/.git" "$d/launch" "$d/.venv/bin"
echo 'echo "bootstrap $PRIMUS_PYTHON $PRIMUS_EXTRAS" >> {log}' > "$d/launch/bootstrap.sh"
printf '#!/bin/sh\necho "pip $*" >> {log}\n' > "$d/.venv/bin/python"
chmod +x "$d/.venv/bin/python"
""",
    )
    env = _fake_gcloud_env(tmp_path, home, PRIMUS_REPO_URL="https://example.com/r.git")
    for _ in range(2):
        res = _bash(TPU_VM, "--setup-only", "--python", "python3.11", env=env)
        assert res.returncode == 0, res.stderr
    pip = "pip -m pip install --quiet -c constraints.txt jax[tpu]"
    assert log.read_text().splitlines() == [
        "git clone --quiet --depth=1 --branch main https://example.com/r.git primus_jax",
        "bootstrap python3.11 text,hapt,gcs",
        pip,
        "git -C primus_jax fetch --quiet --depth=1 origin main",
        "git -C primus_jax checkout --quiet --force -B main FETCH_HEAD",
        "bootstrap python3.11 text,hapt,gcs",
        pip,
    ]


def test_tpu_vm_help_documents_the_settings():
    res = _bash(TPU_VM, "--help")
    assert res.returncode == 0
    for word in ("TPU_NAME", "ZONE", "PROJECT", "PRIMUS_REPO_URL", "--dry-run", "--workdir"):
        assert word in res.stdout


def test_slurm_directives():
    with open(SLURM) as f:
        directives = dict(
            re.match(r"#SBATCH (--[\w-]+)=?(\S*)", line).groups()
            for line in f
            if line.startswith("#SBATCH ")
        )
    assert directives["--requeue"] == ""
    assert directives["--signal"] == "B:USR1@120"
    assert directives["--ntasks-per-node"] == directives["--gpus-per-node"]  # one per GPU
    assert "--gpus-per-task" not in directives  # every process must see the node's GPUs


def test_slurm_dry_run_prints_the_launch():
    res = _bash(SLURM, "--workdir=/shared/runs/hapt", TRICKY, env={"DRY_RUN": "1"}, cwd="/")
    assert res.returncode == 0, res.stderr
    lines = [shlex.split(x) for x in res.stdout.splitlines() if not x.startswith("#")]
    prepare, train = lines
    python = os.path.join(REPO, ".venv/bin/python")
    args = ["--config=configs/primus_hapt.py", "--workdir=/shared/runs/hapt", TRICKY]
    assert prepare == [python, "launch/prepare_data.py", *args]
    srun = ["srun", "--kill-on-bad-exit=1", python, "-m", "primus_jax.main"]
    assert train == [*srun, *args, DISTRIBUTED]
    assert "scontrol requeue" in res.stdout


def test_slurm_default_workdir_follows_the_job_id():
    res = _bash(SLURM, env={"DRY_RUN": "1", "SLURM_JOB_ID": "1234", "PRIMUS_VENV": "/v"})
    assert res.returncode == 0, res.stderr
    train = shlex.split(res.stdout.splitlines()[3])
    assert f"--workdir={REPO}/runs/slurm-1234" in train and train[2] == "/v/bin/python"


def _slurm_sandbox(tmp_path, python_body):
    log = tmp_path / "log"
    _fake(str(tmp_path / "bin/srun"), 'while [[ $1 == --* ]]; do shift; done\nexec "$@"\n')
    _fake(str(tmp_path / "bin/scontrol"), f'echo "scontrol $*" >> {log}\n')
    _fake(str(tmp_path / "venv/bin/python"), f'echo "python $*" >> {log}\n' + python_body)
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "PRIMUS_VENV": str(tmp_path / "venv"),
        "SLURM_JOB_ID": "77",
        "SLURM_SUBMIT_DIR": REPO,
    }
    return env, log


_TRAINER = """[[ $1 == -m ]] || exit 0
trap 'echo "trainer: SIGTERM, checkpointed" >> {log}; exit 0' TERM
echo "trainer: started" >> {log}
for i in $(seq 300); do sleep 0.1; done
"""


@pytest.mark.parametrize("sig, requeued", [(signal.SIGUSR1, True), (signal.SIGTERM, False)])
def test_slurm_signals_checkpoint_and_the_time_limit_notice_requeues(tmp_path, sig, requeued):
    env, log = _slurm_sandbox(tmp_path, _TRAINER.format(log=tmp_path / "log"))
    proc = subprocess.Popen(
        ["bash", SLURM, "--workdir=/w"],
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while "trainer: started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    lines = log.read_text().splitlines()
    assert proc.returncode == 0, err
    assert lines[0] == "python launch/prepare_data.py --config=configs/primus_hapt.py --workdir=/w"
    assert (
        lines[1]
        == f"python -m primus_jax.main --config=configs/primus_hapt.py --workdir=/w {DISTRIBUTED}"
    )
    assert "trainer: SIGTERM, checkpointed" in lines
    assert ("scontrol requeue 77" in lines) == requeued


def test_slurm_passes_the_trainers_exit_status(tmp_path):
    env, log = _slurm_sandbox(tmp_path, "[[ $1 == -m ]] || exit 0\nexit 3\n")
    res = _bash(SLURM, "--workdir=/w", env=env)
    assert res.returncode == 3
    assert not any(line.startswith("scontrol") for line in log.read_text().splitlines())


def test_prepare_data_skips_synthetic_configs():
    res = subprocess.run(
        [sys.executable, os.path.join(LAUNCH, "prepare_data.py"), "--config=configs/smoke.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "nothing to build" in res.stderr
