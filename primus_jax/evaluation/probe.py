"""Linear probes on frozen embeddings: multinomial logistic regression and closed-form ridge.

Both L2-normalise their inputs (as the reference does) and return a :class:`LinearProbe` whose
``weights (C, D)`` and ``bias (C,)`` live in the input space. Logistic: the convex MAP objective
``mean CE + (l2 / 2n) ||W - W_prior||^2`` (scikit-learn's ``C = 1 / l2``), solved by L-BFGS in
one jitted loop on zero-padded size buckets. Ridge: big_vision's ``fewshot_lsr`` on +-1 targets,
in float64 NumPy. Solver choices and timings: docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

from primus_jax.evaluation.zeroshot import l2_normalize


@dataclasses.dataclass(frozen=True)
class LinearProbe:
    """A fitted linear classifier ``logits = weights @ normalize(x) + bias``.

    Attributes:
        weights: (C, D) class weights in the input space.
        bias: (C,) class biases.
        normalize: whether inputs are L2-normalised before the product (as during fitting).
        info: solver diagnostics (JSON-serialisable).
    """

    weights: np.ndarray
    bias: np.ndarray
    normalize: bool = True
    info: dict = dataclasses.field(default_factory=dict)

    def logits(self, emb: object, *, chunk: int = 16384) -> np.ndarray:
        """(N, C) class scores for (N, D) embeddings, in the weights' precision.

        Rows are processed in blocks so that float64 weights (ridge) do not promote a whole
        large test set to a float64 copy at once.
        """
        x = np.asarray(emb, dtype=np.float32)
        dtype = np.result_type(np.float32, self.weights.dtype, self.bias.dtype)
        out = np.empty((x.shape[0], self.weights.shape[0]), dtype)
        for start in range(0, x.shape[0], chunk):
            block = x[start : start + chunk]
            block = l2_normalize(block) if self.normalize else block
            out[start : start + chunk] = block @ self.weights.T + self.bias
        return out

    def predict(self, emb: object) -> np.ndarray:
        """(N,) argmax class (ties -> lowest index)."""
        return np.argmax(self.logits(emb), axis=1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class LogisticConfig:
    """Settings of the logistic probe (see module doc).

    Attributes:
        l2: prior precision on the weights (scikit-learn ``C = 1 / l2``).
        fit_bias: learn an unpenalised per-class bias; otherwise the bias stays 0.
        init: ``"zero"`` or ``"prompts"`` (start from the zero-shot classifier: the few-shot
            driver supplies the very class vectors it reports zero-shot accuracy with).
        init_scale: multiplies the prompt class vectors: a logit scale 1/tau. The default 10 is
            1/tau at PRIMUS's initial temperature 0.1; ``evaluation.run`` passes the encoder's
            learned 1/tau_mm. 1.0 is the reference's unscaled head (a much weaker prior).
        prior: centre of the penalty: ``"init"`` (the initial weights) or ``"zero"``.
        max_iter: L-BFGS iteration cap; 0 returns the starting point (with ``init="prompts"``
            exactly the scaled zero-shot classifier).
        tol: stop when ||grad|| of the objective divided by n falls below
            ``tol * max(1, ||grad at the start||)``.
        memory_size: L-BFGS history length.
        normalize: L2-normalise inputs.
        min_bucket: smallest padded train-set size (compile-sharing bucket).
        l2_grid: if non-empty, ``l2`` is chosen from these by cross-validation on the training
            shots (:func:`~primus_jax.evaluation.selection.fit_probe`); ``l2`` is the fallback.
        cv_folds: maximum number of CV folds.
    """

    l2: float = 1.0
    fit_bias: bool = True
    init: Literal["zero", "prompts"] = "zero"
    init_scale: float = 10.0
    prior: Literal["init", "zero"] = "init"
    max_iter: int = 1000
    tol: float = 1e-5
    memory_size: int = 10
    normalize: bool = True
    min_bucket: int = 256
    l2_grid: tuple[float, ...] = ()
    cv_folds: int = 5


@dataclasses.dataclass(frozen=True)
class RidgeConfig:
    """Settings of the closed-form ridge probe (big_vision ``fewshot_lsr`` defaults).

    Attributes:
        l2: ridge penalty on the standardised features.
        whiten: standardise each feature with the train shots' mean and std (+1e-5).
        bias_constant: value of the appended constant feature.
        normalize: L2-normalise inputs before standardising.
        l2_grid: if non-empty, ``l2`` is chosen from these by cross-validation on the training
            shots (:func:`~primus_jax.evaluation.selection.fit_probe`); ``l2`` is the fallback.
        cv_folds: maximum number of CV folds.
    """

    l2: float = 2.0**10
    whiten: bool = True
    bias_constant: float = 100.0
    normalize: bool = True
    l2_grid: tuple[float, ...] = ()
    cv_folds: int = 5


def bucket_size(n: int, min_bucket: int = 256) -> int:
    """Padded train-set size: the smallest ``min_bucket * 4**j`` that holds n rows."""
    if n <= min_bucket:
        return min_bucket
    return min_bucket * 4 ** math.ceil(math.log(n / min_bucket, 4) - 1e-12)


@functools.partial(jax.jit, static_argnames=("max_iter", "memory_size"))
def _lbfgs_fit(
    xT, onehotT, row_weight, w_start, b_start, w_prior, lam, bias_on, tol, *, max_iter, memory_size
):
    """L-BFGS on the scaled MAP objective; shapes: xT (D, n), onehotT (C, n), row_weight (n,)."""

    def objective(params):
        logits = params["w"] @ xT + (bias_on * params["b"])[:, None]  # (C, n): fast layout on CPU
        peak = jax.lax.stop_gradient(logits.max(axis=0, keepdims=True))
        lse = jnp.log(jnp.exp(logits - peak).sum(axis=0)) + peak[0]
        ce = lse - (logits * onehotT).sum(axis=0)
        return (ce * row_weight).sum() + 0.5 * lam * jnp.sum((params["w"] - w_prior) ** 2)

    opt = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(params, updates), state

    def keep_going(carry):
        _, state = carry
        count = otu.tree_get(state, "count")
        grad_norm = otu.tree_norm(otu.tree_get(state, "grad"))
        # count == 0: the state's gradient is not computed yet. max_iter = 0 keeps the start.
        return (count < max_iter) & ((count == 0) | (grad_norm >= threshold))

    params = {"w": w_start, "b": b_start}
    threshold = tol * jnp.maximum(1.0, otu.tree_norm(jax.grad(objective)(params)))
    params, state = jax.lax.while_loop(keep_going, step, (params, opt.init(params)))
    value, grad = jax.value_and_grad(objective)(params)
    return params, otu.tree_get(state, "count"), otu.tree_norm(grad), value, threshold


def _resolve_device(device: jax.Device | str | None) -> jax.Device:
    if isinstance(device, jax.Device):
        return device
    try:
        return jax.devices(device or "cpu")[0]
    except RuntimeError:  # e.g. JAX_PLATFORMS excludes the CPU backend
        if device not in (None, "cpu"):
            raise
        return jax.devices()[0]


def _check_xy(x: object, y: object, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"need x (n, D) and integer y (n,), got {x.shape} and {y.dtype} {y.shape}")
    if x.shape[0] == 0:
        raise ValueError("cannot fit a probe on zero examples")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or inf")
    return x, y.astype(np.int64)


def fit_logistic(
    x: object,
    y: object,
    num_classes: int,
    *,
    config: LogisticConfig = LogisticConfig(),
    init_weights: np.ndarray | None = None,
    warm_start: LinearProbe | None = None,
    device: jax.Device | str | None = None,
) -> LinearProbe:
    """Fits the L2-regularised multinomial logistic probe (see module doc).

    Args:
        x: (n, D) train embeddings.
        y: (n,) labels in ``[0, num_classes)``. Classes without examples get a bias that the
            optimiser drives towards -inf, so every class should be represented.
        num_classes: C.
        config: solver settings.
        init_weights: (C, D) starting weights (e.g. zero-shot class vectors, already scaled).
            ``None`` starts from 0. With ``prior="init"`` also the centre of the penalty.
        warm_start: a probe to start from instead (weights and bias), e.g. the solution at a
            neighbouring penalty; the penalty's centre still comes from ``init_weights``.
        device: where to run: ``None``/``"cpu"`` (default), a platform name or a device.

    Returns:
        The probe; ``info`` holds ``iterations``, ``grad_norm``, ``objective``, ``converged``.
    """
    x, y = _check_xy(x, y, num_classes)
    if config.normalize:
        x = l2_normalize(x)
    n, dim = x.shape
    n_pad = bucket_size(n, config.min_bucket)
    xT = np.zeros((dim, n_pad), np.float32)
    xT[:, :n] = x.T
    onehotT = np.zeros((num_classes, n_pad), np.float32)
    onehotT[y, np.arange(n)] = 1.0
    row_weight = np.zeros(n_pad, np.float32)
    row_weight[:n] = 1.0 / n  # padding rows weigh nothing: the objective equals the unpadded one
    if init_weights is None:
        w_init = np.zeros((num_classes, dim), np.float32)
    else:
        w_init = np.asarray(init_weights, np.float32)
        if w_init.shape != (num_classes, dim):
            raise ValueError(f"init_weights {w_init.shape} != {(num_classes, dim)}")
    w_prior = w_init if config.prior == "init" else np.zeros_like(w_init)
    b_init = np.zeros(num_classes, np.float32)
    if warm_start is not None:
        w_init = np.asarray(warm_start.weights, np.float32).reshape(w_init.shape)
        b_init = np.asarray(warm_start.bias, np.float32).reshape(b_init.shape)
    with jax.default_device(_resolve_device(device)):
        params, count, grad_norm, value, threshold = _lbfgs_fit(
            xT,
            onehotT,
            row_weight,
            w_init,
            b_init,
            w_prior,
            np.float32(config.l2 / n),
            np.float32(config.fit_bias),
            np.float32(config.tol),
            max_iter=config.max_iter,
            memory_size=config.memory_size,
        )
        params, count, grad_norm, value, threshold = jax.device_get(
            (params, count, grad_norm, value, threshold)
        )
    info = {
        "iterations": int(count),
        "grad_norm": float(grad_norm),
        "objective": float(value),
        "converged": bool(grad_norm < threshold),
        "padded_n": n_pad,
    }
    bias = np.asarray(params["b"]) if config.fit_bias else np.zeros(num_classes, np.float32)
    return LinearProbe(np.asarray(params["w"]), bias, config.normalize, info)


def _ridge_design(
    x: np.ndarray, y: np.ndarray, num_classes: int, *, whiten: bool, bias_constant: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised features plus the constant column, +-1 targets, and the feature statistics."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0, keepdims=True) if whiten else np.zeros((1, x.shape[1]))
    std = x.std(axis=0, keepdims=True) + 1e-5 if whiten else np.ones((1, x.shape[1]))
    xw = np.concatenate([(x - mean) / std, np.full((x.shape[0], 1), bias_constant)], axis=1)
    targets = 2.0 * np.eye(num_classes)[y] - 1.0
    return xw, targets, mean, std


def _to_input_space(
    w_aug: np.ndarray, mean: np.ndarray, std: np.ndarray, bias_constant: float
) -> tuple[np.ndarray, np.ndarray]:
    """Folds the standardisation and the constant feature of (D + 1, C) weights into W, b."""
    w_std, w_bias = w_aug[:-1], w_aug[-1]
    weights = (w_std / std.T).T
    bias = bias_constant * w_bias - (mean / std) @ w_std
    return weights, bias.ravel()


def ridge_cache(
    x: np.ndarray, y: np.ndarray, num_classes: int, *, whiten: bool, bias_constant: float
) -> dict[str, np.ndarray]:
    """Eigendecomposition cache for solving one ridge problem at many penalties (big_vision).

    With X (N, D') the standardised features plus the bias column and Y the +-1 targets, the
    solution (X^T X + l2 I)^-1 X^T Y equals ``lhs @ diag(1 / (eigs + l2)) @ rhs`` for
    ``X^T X = q diag(eigs) q^T`` (lhs = q, rhs = q^T X^T Y) when N >= D', and for
    ``X X^T = q diag(eigs) q^T`` (lhs = X^T q, rhs = q^T Y) otherwise. Any ``l2`` then costs two
    small products; :func:`ridge_solve` does that.
    """
    xw, targets, mean, std = _ridge_design(
        x, y, num_classes, whiten=whiten, bias_constant=bias_constant
    )
    if xw.shape[0] >= xw.shape[1]:
        eigs, q = np.linalg.eigh(xw.T @ xw)
        lhs, rhs = q, q.T @ (xw.T @ targets)
    else:
        eigs, q = np.linalg.eigh(xw @ xw.T)
        lhs, rhs = xw.T @ q, q.T @ targets
    return {
        "eigs": eigs,
        "lhs": lhs,
        "rhs": rhs,
        "mean": mean,
        "std": std,
        "bias_constant": np.float64(bias_constant),
    }


def ridge_solve(cache: dict[str, np.ndarray], l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (C, D) and bias (C,) in the input space for one penalty, from a cache."""
    w_aug = (cache["lhs"] / (cache["eigs"] + l2)[None, :]) @ cache["rhs"]  # (D + 1, C)
    return _to_input_space(w_aug, cache["mean"], cache["std"], float(cache["bias_constant"]))


def fit_ridge(
    x: object, y: object, num_classes: int, *, config: RidgeConfig = RidgeConfig()
) -> LinearProbe:
    """Fits the closed-form ridge probe on +-1 one-hot targets (see module doc).

    For a single penalty this solves the smaller of the primal (D' x D') and dual (N x N)
    normal equations directly: the same solution as :func:`ridge_cache` + :func:`ridge_solve`,
    at a fraction of an eigendecomposition's cost.

    Args:
        x: (n, D) train embeddings.
        y: (n,) labels in ``[0, num_classes)``.
        num_classes: C.
        config: penalty and preprocessing.

    Returns:
        The probe (float64 weights).
    """
    x, y = _check_xy(x, y, num_classes)
    if config.normalize:
        x = l2_normalize(x)
    xw, targets, mean, std = _ridge_design(
        x, y, num_classes, whiten=config.whiten, bias_constant=config.bias_constant
    )
    n, d_aug = xw.shape
    if n >= d_aug:
        w_aug = np.linalg.solve(xw.T @ xw + config.l2 * np.eye(d_aug), xw.T @ targets)
    else:  # push-through identity: (X^T X + l2 I)^-1 X^T = X^T (X X^T + l2 I)^-1
        w_aug = xw.T @ np.linalg.solve(xw @ xw.T + config.l2 * np.eye(n), targets)
    weights, bias = _to_input_space(w_aug, mean, std, config.bias_constant)
    return LinearProbe(weights, bias, config.normalize, {"l2": float(config.l2)})
