"""Config fuzz: seeded random combinations of bad overrides of every key of
``configs/smoke.py`` (None, wrong types, out of range). Each case is refused on assignment by
``ConfigDict`` (naming the field), or raises ``ConfigError`` naming an overridden key from
``train_and_evaluate`` before anything is compiled or written, or is a valid config whose
input, state and train step build (traced, as the smoke step would run them)."""

import functools
import time

import jax
import ml_collections
import numpy as np

from configs import smoke
from primus_jax import input_pipeline, nonfinite, objectives, optim, sharding, train
from primus_jax import state as state_lib
from primus_jax.config import ConfigError
from primus_jax.models import build

SMOKE = smoke.get_config()
NUM_CASES = 400
MAX_TRACED = 2  # accepted cases whose train step is traced (a few seconds each)


def leaf_keys(config, prefix=""):
    for k, v in config.items():
        if isinstance(v, ml_collections.ConfigDict):
            yield from leaf_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


KEYS = list(leaf_keys(SMOKE))


def bad_values(default):
    common = [None, "bogus", ("x",), {"a": 1}]
    if isinstance(default, bool):
        return [*common, 0, 1, 2]
    if isinstance(default, int):
        return [*common, True, -1, 0, 1, 3, 10**9, 0.5, float("nan")]
    if isinstance(default, float):
        return [*common, True, -1.0, 0.0, 2.0, 1e12, float("nan"), float("inf")]
    if isinstance(default, str):
        return [*common, "", " ", 3]
    return [*common, (), ("bogus",), ("paper", "paper"), "a,b"]


def fuzz_cases(n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        picks = rng.choice(len(KEYS), size=rng.integers(1, 4), replace=False)
        out = []
        for i in picks:
            key, default = KEYS[i]
            values = bad_values(default)
            out.append((key, values[rng.integers(len(values))]))
        yield out


def apply(overrides):
    """The config with ``overrides`` set as ``--config.<key>=`` would; ``rejected`` when
    ``ConfigDict`` refuses a value on assignment (its TypeError names the field)."""
    cfg = smoke.get_config()
    for key, value in overrides:
        *path, name = key.split(".")
        block = functools.reduce(lambda c, p: c[p], path, cfg)
        try:
            block[name] = value
        except (TypeError, ValueError) as e:
            assert name in str(e), e
            return cfg, True
    return cfg, False


def _trace_smoke_step(cfg):
    """Everything the smoke step needs, short of compiling: a batch, the state's shapes and
    the guarded step traced over the mesh."""
    objective = objectives.resolve(cfg, num_devices=jax.device_count())
    mesh = sharding.make_mesh(cfg)
    batch = next(input_pipeline.make_train_iterator(cfg))
    model, tx = build.encoder_from_config(cfg.model), optim.make_optimizer(cfg)
    create = functools.partial(state_lib.create_train_state, cfg, model, tx, objective)
    abstract = jax.eval_shape(create)
    step = nonfinite.guard(
        objective.make_train_step(cfg, model, tx, optim.make_schedule(cfg)),
        cfg.train.on_nonfinite,
    )
    sh = sharding.state_shardings(abstract, mesh)
    jitted = sharding.jit_train_step(step, sh, mesh)
    gb = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
    jitted.trace(abstract, gb)


def test_config_fuzz(tmp_path):
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, *a, **k: (
            compiles.append(event)
            if event == "/jax/core/compile/backend_compile_duration"
            else None
        )
    )
    counts = dict(override=0, config_error=0, accepted=0, traced=0)
    crashes = []
    t0 = time.perf_counter()
    for n, overrides in enumerate(fuzz_cases(NUM_CASES)):
        cfg, rejected = apply(overrides)
        if rejected:
            counts["override"] += 1
            continue
        wd = tmp_path / f"case{n}"
        before = len(compiles)
        try:
            objectives.resolve(cfg, num_devices=jax.device_count())
        except ConfigError:
            try:
                train.train_and_evaluate(cfg, str(wd))
            except ConfigError as e:
                counts["config_error"] += 1
                keys = [k for k, _ in overrides]
                if not any(k == e.key or k.startswith(e.key + ".") for k in keys):
                    crashes.append((overrides, f"names {e.key}"))
                assert len(compiles) == before and not wd.exists(), (overrides, e)
            continue
        except Exception as e:
            crashes.append((overrides, f"{type(e).__name__}: {e}"))
            continue
        counts["accepted"] += 1
        if counts["traced"] < MAX_TRACED:
            try:
                _trace_smoke_step(cfg)
                counts["traced"] += 1
            except Exception as e:
                crashes.append((overrides, f"accepted, then {type(e).__name__}: {e}"))
    print(f"config fuzz: {NUM_CASES} cases {counts} in {time.perf_counter() - t0:.1f} s")
    assert not crashes, "\n".join(map(str, crashes[:10]))
    assert counts["config_error"] > NUM_CASES // 4 and counts["override"] > NUM_CASES // 10
    assert counts["traced"] == min(MAX_TRACED, counts["accepted"])
