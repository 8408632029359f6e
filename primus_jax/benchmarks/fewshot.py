"""Times the full few-shot sweep on synthetic embeddings of a realistic size.

    python -m primus_jax.benchmarks.fewshot --n_train=10000 --dim=512 --classes=8

The embeddings mimic encoder outputs (a shared offset, overlapping class means, low-rank plus
isotropic noise; ``--separation`` sets the difficulty). Prints wall time per method and k
(the first k of each padded-size bucket includes compiling the solver), then one JSON line
with ``total_s``, ``timing_s`` (method -> k -> seconds) and the arguments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from primus_jax import cli_errors
from primus_jax.evaluation import fewshot, probe, settings

_N_TRAIN = flags.DEFINE_integer("n_train", 10000, "Train (k-shot pool) embeddings.")
_N_TEST = flags.DEFINE_integer("n_test", 10000, "Test embeddings.")
_DIM = flags.DEFINE_integer("dim", 512, "Embedding width.")
_CLASSES = flags.DEFINE_integer("classes", 8, "Number of classes.")
_SEPARATION = flags.DEFINE_float("separation", 0.12, "Scale of the class means.")
_SHOTS = flags.DEFINE_list("shots", [str(k) for k in settings.DEFAULT_SHOTS], "k values.")
_TRIALS = flags.DEFINE_integer("trials", 5, "Trials per k.")
_METHODS = flags.DEFINE_list("methods", ["logreg", "ridge", "logreg_zs", "zeroshot"], "Methods.")
_JSON = flags.DEFINE_string("json", None, "Also write the JSON line's content here.")


def synthetic_embeddings(
    n: int, dim: int, classes: int, separation: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (n, dim) float32, y (n,), class_means (classes, dim)) with class-imbalanced labels."""
    rng = np.random.default_rng(seed)
    structure = np.random.default_rng(1234)  # the same "encoder geometry" for train and test
    offset = structure.normal(size=dim)
    means = separation * structure.normal(size=(classes, dim))
    mixing = structure.normal(size=(32, dim)) / np.sqrt(32)
    weights = structure.dirichlet(np.full(classes, 5.0))  # mildly imbalanced classes
    y = rng.choice(classes, size=n, p=weights)
    x = 0.5 * offset + means[y] + rng.normal(size=(n, 32)) @ mixing + rng.normal(size=(n, dim))
    return x.astype(np.float32), y, means


def run(
    n_train: int,
    n_test: int,
    dim: int,
    classes: int,
    separation: float,
    shots: Sequence[int],
    trials: int,
    methods: Sequence[str],
) -> tuple[dict, float]:
    """Runs the sweep and prints timings; returns the ``run_fewshot`` result and wall time."""
    x_tr, y_tr, means = synthetic_embeddings(n_train, dim, classes, separation, seed=0)
    x_te, y_te, _ = synthetic_embeddings(n_test, dim, classes, separation, 1)
    rng = np.random.default_rng(2)
    prompts = [m + 0.5 * separation * rng.normal(size=(6, dim)) for m in means]
    t0 = time.perf_counter()
    res = fewshot.run_fewshot(
        x_tr,
        y_tr,
        x_te,
        y_te,
        shots=shots,
        trials=trials,
        seed=0,
        methods=list(methods),
        class_prompt_emb=prompts,
    )
    total = time.perf_counter() - t0
    print(f"sweep: {n_train} train / {n_test} test x {dim}, {classes} classes,")
    print(f"shots {list(shots)}, {trials} trials; total wall time {total:.1f} s")
    print("method     k  seconds  bucket  acc (mean ± se)   L-BFGS iters")
    for name, method in res["methods"].items():
        for k, entry in method["results"].items():
            bucket = probe.bucket_size(entry["n_train"]) if method["probe"] == "logistic" else "-"
            iters = entry.get("fit", {}).get("iterations", "")
            acc = entry["accuracy"]
            se = acc["stderr"] if acc["stderr"] is not None else 0.0
            print(
                f"{name:10s} {k:>3s} {res['timing_s'][name][k]:8.2f} {bucket!s:>7s}"
                f"  {100 * acc['mean']:5.1f} ± {100 * se:4.1f}   {iters}"
            )
    return res, total


def _ints(flag: str, values: Sequence[str]) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--{flag}={','.join(values)}: expected integers") from None


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    args = {
        "n_train": _N_TRAIN.value,
        "n_test": _N_TEST.value,
        "dim": _DIM.value,
        "classes": _CLASSES.value,
        "separation": _SEPARATION.value,
        "shots": _ints("shots", _SHOTS.value),
        "trials": _TRIALS.value,
        "methods": _METHODS.value,
    }
    res, total = run(**args)
    summary = {"total_s": round(total, 3), "timing_s": res["timing_s"], "args": args}
    if _JSON.value:
        with open(_JSON.value, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    cli_errors.run(main)
