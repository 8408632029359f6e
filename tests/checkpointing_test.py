"""Checkpoint faults on real files: a truncated newest checkpoint is moved aside and the older
one used, a damaged step-0 (imported) checkpoint stops with its step named, nothing older is
removed before a newer save reads back, and a failed save (full disk) names the errno and
keeps the previous checkpoint."""

import errno
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support.checkpoints import truncate_arrays

from primus_jax import checkpointing


def _state(v):
    return {"w": jnp.full((64, 8), float(v)), "step": jnp.asarray(v, jnp.int32)}


def _target():
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), _state(0)
    )


def _ckpt(tmp_path, keep=3):
    return checkpointing.Checkpointer(tmp_path / "checkpoints", max_to_keep=keep, async_save=True)


def test_damaged_latest_is_moved_aside_and_the_older_one_restored(tmp_path, caplog):
    c = _ckpt(tmp_path)
    for s in (1, 2):
        c.save(s, _state(s))
    c.close()
    truncate_arrays(tmp_path / "checkpoints" / "2")
    c = _ckpt(tmp_path)
    with caplog.at_level(logging.WARNING):
        state, step = c.restore_latest(_target())
    c.close()
    assert step == 1
    np.testing.assert_array_equal(np.asarray(state["w"]), 1.0)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1"]
    (aside,) = os.listdir(tmp_path / checkpointing.DAMAGED_DIR)  # moved, not deleted
    assert aside.startswith("2.")
    text = caplog.text
    assert "step 2" in text and "cannot be read" in text
    assert "steps 2-2 is lost" in text


def test_damaged_step0_checkpoint_stops_and_stays_in_place(tmp_path):
    c = _ckpt(tmp_path)
    c.save(0, _state(0), force=True)
    c.close()
    truncate_arrays(tmp_path / "checkpoints" / "0")
    c = _ckpt(tmp_path)
    with pytest.raises(checkpointing.CheckpointError, match=r"step-0 checkpoint .*cannot be read"):
        c.restore_latest(_target())
    c.close()
    assert os.listdir(tmp_path / "checkpoints") == ["0"]


def test_keep_never_drops_the_last_good_checkpoint_before_a_newer_one_reads(tmp_path):
    c = _ckpt(tmp_path, keep=1)
    c.save(1, _state(1))
    c.save(2, _state(2))  # step 1 is read back here; 2 is not yet, so 1 stays
    c.manager.wait_until_finished()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]
    truncate_arrays(tmp_path / "checkpoints" / "2")
    with pytest.raises(
        checkpointing.CheckpointSaveError,
        match=r"reading back checkpoint step 2 .*step 1\) is intact",
    ):
        c.close()  # reads 2 back: fails, so nothing is removed
    assert "1" in os.listdir(tmp_path / "checkpoints")
    c = _ckpt(tmp_path, keep=1)
    assert c.restore_latest(_target())[1] == 1
    c.save(3, _state(3))
    c.close()  # 3 reads back: now the older ones go
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_failed_save_is_named_and_the_previous_checkpoint_kept(tmp_path, monkeypatch, code):
    from orbax.checkpoint._src.path import async_path

    c = _ckpt(tmp_path)
    c.save(1, _state(1))
    c.manager.wait_until_finished()

    async def fail(path, text):  # the disk fills up (EROFS: is remounted read-only)
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(async_path, "write_text", fail)
    name = errno.errorcode[code]
    with pytest.raises(checkpointing.CheckpointSaveError, match=rf"step 2 .*{name}.*step 1\) is"):
        c.save(2, _state(2))
        c.close()
    monkeypatch.undo()
    c = _ckpt(tmp_path)
    state, step = c.restore_latest(_target())
    c.close()
    assert step == 1
    np.testing.assert_array_equal(np.asarray(state["w"]), 1.0)
