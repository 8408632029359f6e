"""``train.on_nonfinite``: a NaN window mid-run is skipped with the state exactly as before the
bad step (compared with a run that never trained on that batch), its segments are logged,
and ``stop`` names the step before anything from it is saved."""

import functools
import json
import logging
import os

import jax
import numpy as np
import pytest
from support.checkpoints import truncate_arrays

from primus_jax import input_pipeline, nonfinite, objectives, optim, sharding, train
from primus_jax import state as state_lib
from primus_jax.config import base_config
from primus_jax.models import build

BAD_STEP = 2


def tiny_config(num_steps=4):
    c = base_config()
    c.seed = 5
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 64
    c.queue.size = 32
    c.model.hidden = 64
    c.model.ssl_dim = c.model.mm_dim = 32
    c.model.conv_channels = 8
    c.optim.lr = 1e-3
    c.train.num_steps = num_steps
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    c.train.on_nonfinite = "skip_batch"
    return c


class NaNWindowAt:
    """The real iterator, with one IMU window of the ``bad``-th batch turned to NaN (a
    corrupt recording that passed the builder)."""

    def __init__(self, it, bad):
        self.it, self.bad, self.n = it, bad, 0

    def __iter__(self):
        return self

    def __next__(self):
        b = next(self.it)
        self.n += 1
        if self.n == self.bad:
            b = dict(b, imu=b["imu"].copy())
            b["imu"][3, 100:150] = np.nan
        return b

    def get_state(self):
        return self.it.get_state()

    def set_state(self, s):
        self.it.set_state(s)


def _host(tree):
    return jax.tree.map(lambda x: np.array(jax.device_get(x)), tree)


def _assert_equal(a, b, what):
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
    ):
        np.testing.assert_array_equal(x, y, err_msg=f"{what}: {jax.tree_util.keystr(path)}")


def test_skip_batch_equals_a_run_without_that_batch(tmp_path, monkeypatch, caplog, programs):
    c = tiny_config()
    clean = list(__import__("itertools").islice(input_pipeline.make_train_iterator(c), 4))
    real = input_pipeline.make_train_iterator
    monkeypatch.setattr(
        input_pipeline, "make_train_iterator", lambda cfg: NaNWindowAt(real(cfg), BAD_STEP)
    )
    seen = {}
    with caplog.at_level(logging.WARNING):
        final = train.train_and_evaluate(
            c, str(tmp_path), programs=programs, step_hook=lambda s, st: seen.update({s: _host(st)})
        )
    final = _host(final)

    # 1. The bad step left everything as it was, except the step (the data/RNG position).
    before, after = seen[BAD_STEP - 1], seen[BAD_STEP]
    assert int(after.step) == BAD_STEP
    _assert_equal(after.replace(step=before.step), before, "state after the skipped step")

    # 2. A run that never trained on batch 2: from the state after step 1, the training
    # program (from the cache: the very one the run used) on batches 3 and 4 at their own
    # positions. On finite batches the guard passes the new state through unchanged.
    mesh = sharding.make_mesh(c)
    objective = objectives.get("primus")
    model, tx = build.encoder_from_config(c.model), optim.make_optimizer(c)
    create = functools.partial(state_lib.create_train_state, c, model, tx, objective)
    sh = sharding.state_shardings(jax.eval_shape(create), mesh)
    plain = objective.make_train_step(c, model, tx, optim.make_schedule(c))
    jitted = sharding.jit_train_step(nonfinite.guard(plain, "skip_batch"), sh, mesh)
    ref = jax.device_put(before.replace(step=np.int32(BAD_STEP)), sh)
    for b in clean[BAD_STEP:]:
        b = sharding.global_batch(b, mesh)
        ref, m = programs.compile("train step", c, jitted, ref, b)(ref, b)
        assert float(m[nonfinite.FLAG]) == 0.0
    _assert_equal(final, _host(ref), "final state vs. the run without batch 2")
    assert not np.array_equal(final.params["log_tau_mm"], before.params["log_tau_mm"])

    # 3. The skipped segments are logged, the window's metrics say so, and the checkpoint
    # at the bad step holds the kept state.
    ids = nonfinite.format_ids(clean[BAD_STEP - 1]["segment_id"])
    warning = [r.getMessage() for r in caplog.records if "batch skipped" in r.getMessage()]
    assert len(warning) == 1 and f"step {BAD_STEP}:" in warning[0]
    assert all(i in warning[0] for i in ids)
    with open(tmp_path / "metrics.jsonl") as f:
        rows = {r["step"]: r for r in map(json.loads, f)}
    assert rows[BAD_STEP]["train/skipped"] == 1 and rows[BAD_STEP]["train/loss"] is None
    assert rows[BAD_STEP + 1]["train/skipped"] == 0 and rows[BAD_STEP + 1]["train/loss"] > 0
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]

    # 4. The restart after a damaged newest checkpoint, on the same program: step
    # 4's arrays truncated, the rerun reports it, moves it aside, resumes from step 2 and
    # ends exactly where the first run ended.
    monkeypatch.undo()
    truncate_arrays(tmp_path / "checkpoints" / "4")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = _host(train.train_and_evaluate(c, str(tmp_path), programs=programs))
    assert "step 4" in caplog.text and "cannot be read" in caplog.text
    assert "resuming from step 2 instead of step 4" in caplog.text
    assert os.listdir(tmp_path / "damaged_checkpoints")[0].startswith("4.")
    _assert_equal(again, final, "resumed past the damaged checkpoint")


def _metrics(flag, loss=1.0):
    ids = np.array([[1, 2], [3, 4]], np.uint32)
    return {"loss": loss, "grad_norm": 1.0, nonfinite.FLAG: flag, nonfinite.IDS: ids}


def test_stop_names_the_step_one_step_later_and_before_a_save():
    m = nonfinite.Monitor("stop")
    m.observe(7, _metrics(0.0))
    m.observe(8, _metrics(1.0, float("nan")))  # seen when step 9 is dispatched
    with pytest.raises(nonfinite.NonFiniteError, match=r"step 8: .*0000000100000002"):
        m.observe(9, _metrics(0.0))
    m = nonfinite.Monitor("stop")
    m.observe(8, _metrics(1.0, float("nan")))
    with pytest.raises(nonfinite.NonFiniteError, match="on_nonfinite=skip_batch"):
        m.check_all()  # what train.py calls before every checkpoint


def test_window_means_leave_out_skipped_steps():
    m = nonfinite.Monitor("skip_batch")
    for s, (flag, loss) in enumerate([(0.0, 2.0), (1.0, float("nan")), (0.0, 4.0)]):
        m.observe(s, _metrics(flag, loss))
    out = m.window_scalars()
    assert out["loss"] == 3.0 and out["skipped"] == 1.0 and m.skipped == [1]
    assert nonfinite.IDS not in out and nonfinite.FLAG not in out
