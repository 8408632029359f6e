"""Times the full few-shot sweep on synthetic embeddings (a realistic size, not a unit test).

    python -m primus_jax.evaluation.benchmark --n-train 10000 --dim 512 --classes 8

The embeddings mimic real encoder outputs: a shared offset (all cosines positive, so the L2
normalisation matters), class means that overlap, low-rank correlated noise plus isotropic
noise. ``--separation`` sets the difficulty. It prints wall time per method and k, split into
the first k of each padded-size bucket (which includes compiling the solver) and the rest.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from primus_jax.evaluation import fewshot, probe


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


def main(argv: list[str] | None = None) -> dict:
    """Runs the sweep and prints timings; returns the ``run_fewshot`` result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--separation", type=float, default=0.12)
    parser.add_argument("--shots", default=",".join(map(str, fewshot.DEFAULT_SHOTS)))
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--methods", default="logreg,ridge,logreg_zs,zeroshot")
    parser.add_argument("--json", default=None, help="also write the timings here")
    args = parser.parse_args(argv)

    x_tr, y_tr, means = synthetic_embeddings(
        args.n_train, args.dim, args.classes, args.separation, seed=0
    )
    x_te, y_te, _ = synthetic_embeddings(args.n_test, args.dim, args.classes, args.separation, 1)
    rng = np.random.default_rng(2)
    prompts = [m + 0.5 * args.separation * rng.normal(size=(6, args.dim)) for m in means]
    shots = [int(k) for k in args.shots.split(",")]
    t0 = time.perf_counter()
    res = fewshot.run_fewshot(
        x_tr,
        y_tr,
        x_te,
        y_te,
        shots=shots,
        trials=args.trials,
        seed=0,
        methods=args.methods.split(","),
        class_prompt_emb=prompts,
    )
    total = time.perf_counter() - t0

    print(f"sweep: {args.n_train} train / {args.n_test} test x {args.dim}, {args.classes} classes,")
    print(f"shots {shots}, {args.trials} trials; total wall time {total:.1f} s")
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
    summary = {"total_s": total, "timing_s": res["timing_s"], "args": vars(args)}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
    return res


if __name__ == "__main__":
    main()
