"""Orbax checkpoints of the train state and the data iterator, and preemption handling.

Layout: ``<workdir>/checkpoints/<step>/{state, data, meta}``. ``state`` is the whole
:class:`~primus_jax.state.TrainState` (step, params, optimizer state, NN queue, RNG),
``data`` the input iterator's position, ``meta`` a small JSON record (config, wall time).

Resume order: the latest readable checkpoint in the workdir, else a fresh initialisation. A
checkpoint that fails to read is reported by step and reason, moved to
``<workdir>/damaged_checkpoints/`` (never deleted) and the next older one is used; a damaged
step-0 (imported) checkpoint stops the run instead, since training from random weights is not
what was asked. A save is read back before ``keep_checkpoints`` removes anything older, and a
save that fails (full or read-only disk) raises :class:`CheckpointSaveError` with the previous
checkpoint intact. Restoring works onto a different device count (the state is replicated;
orbax reshards on restore).
"""

from __future__ import annotations

import errno
import signal
import threading
import time

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from primus_jax import cli_errors, paths


def absolute_path(path) -> epath.Path:
    """``path`` made absolute (orbax refuses relative paths); URLs such as gs:// unchanged."""
    return paths.path(path)


class CheckpointError(cli_errors.RunFault, RuntimeError):
    """A checkpoint cannot be read (and no older one can stand in for it)."""


class CheckpointSaveError(CheckpointError):
    """Writing a checkpoint failed; the previous one is intact."""


DAMAGED_DIR = "damaged_checkpoints"


def failure_reason(e: BaseException) -> str:
    """One line: the errno name where one is in the chain (ENOSPC, EROFS, EACCES), the
    exception type and the first line of its message."""
    name, seen = "", e
    while seen is not None and not name:
        if isinstance(seen, OSError) and seen.errno:
            name = errno.errorcode.get(seen.errno, "")
        seen = seen.__cause__ or seen.__context__
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    for code, words in (
        ("ENOSPC", "No space left"),
        ("EROFS", "Read-only file system"),
        ("EACCES", "Permission denied"),
    ):
        if not name and words in str(e):
            name = code
    text = text if len(text) <= 300 else text[:300] + " ..."
    return f"{name + ': ' if name else ''}{type(e).__name__}: {text}"


def _is_grain_iterator(it) -> bool:
    return type(it).__module__.startswith("grain")


class Checkpointer:
    """Periodic / final / preemption saves with keep-last-N, and restore-latest-readable.

    Old checkpoints are removed here, not by orbax: only after the newest one has been read
    back (:meth:`_verify_pending`, at the next save and at :meth:`close`)."""

    def __init__(self, directory, *, max_to_keep: int, async_save: bool = True):
        self.directory = absolute_path(directory)
        self.keep = max_to_keep
        self._pending: tuple[int, object] | None = None  # (step, abstract state) unread
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None,
                create=True,
                # A SIGKILLed save leaves an uncommitted step folder (on GCS the step's
                # own name, without commit_success.txt); remove it before saving again.
                cleanup_tmp_directories=True,
                enable_async_checkpointing=async_save,
            ),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    @staticmethod
    def _data_save_args(data_iter):
        if data_iter is None:
            return ocp.args.JsonSave({})
        if _is_grain_iterator(data_iter):
            import grain

            return grain.checkpoint.CheckpointSave(data_iter)
        return ocp.args.JsonSave(data_iter.get_state())

    @staticmethod
    def _data_restore_args(data_iter):
        if data_iter is not None and _is_grain_iterator(data_iter):
            import grain

            return grain.checkpoint.CheckpointRestore(data_iter)
        return ocp.args.JsonRestore()

    def save(self, step: int, state, data_iter=None, *, meta=None, force: bool = False) -> bool:
        """Saves ``state`` and the iterator position at ``step``. Returns whether it saved."""
        # Let the step that produced ``state`` finish before orbax slices and copies it, so
        # the blocking part of the save measures the copy, not the step.
        state = jax.block_until_ready(state)
        self._verify_pending()
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=self._data_save_args(data_iter),
            meta=ocp.args.JsonSave({"step": int(step), "time": time.time(), **(meta or {})}),
        )
        try:
            saved = self.manager.save(step, args=args, force=force)
        except Exception as e:
            raise self._save_error(step, e) from e
        if saved:
            logging.info("checkpoint: saving step %d to %s", step, self.directory)
            abstract = jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(
                    a.shape, a.dtype, sharding=getattr(a, "sharding", None)
                ),
                state,
            )
            self._pending = (step, abstract)
        return saved

    def _save_error(self, step: int, e: BaseException, what="saving") -> CheckpointSaveError:
        self.manager.reload()
        good = [s for s in self.manager.all_steps() if s != step]
        kept = (
            f"the previous checkpoint (step {max(good)}) is intact"
            if good
            else "no older checkpoint exists"
        )
        return CheckpointSaveError(
            f"{what} checkpoint step {step} in {self.directory} failed ({failure_reason(e)}); "
            f"{kept}. Free space or make it writable, then rerun the same command to resume"
        )

    def _verify_pending(self) -> None:
        """Waits for the last save, reads it back, then removes checkpoints beyond
        ``keep`` (never the one just verified, never one before a newer one is readable)."""
        if self._pending is None:
            return
        step, abstract = self._pending
        self._pending = None
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise self._save_error(step, e) from e
        try:
            self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:
            raise self._save_error(step, e, "reading back") from e
        steps = sorted(self.manager.all_steps())
        for old in steps[: max(0, len(steps) - self.keep)]:
            if old < step:
                self.manager.delete(old)

    def restore(self, step: int, abstract_state, data_iter=None):
        """Restores ``(state, meta)`` at ``step`` onto ``abstract_state``'s shardings and
        moves ``data_iter`` to the saved position."""
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=self._data_restore_args(data_iter),
                meta=ocp.args.JsonRestore(),
            ),
        )
        if data_iter is not None and not _is_grain_iterator(data_iter):
            data_iter.set_state(restored["data"])
        logging.info("checkpoint: restored step %d from %s", step, self.directory)
        return restored["state"], restored["meta"]

    def restore_latest(self, abstract_state, data_iter=None):
        """``(state, step)`` of the newest readable checkpoint (None if there is none),
        moving unreadable ones aside. Step 0 (imported weights) restores no data position."""
        lost = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                state, _ = self.restore(step, abstract_state, data_iter if step > 0 else None)
            except Exception as e:
                reason = failure_reason(e)
                if step == 0:
                    raise CheckpointError(
                        f"the step-0 checkpoint in {self.directory} (imported weights) cannot "
                        f"be read ({reason}); it is left in place. Re-run the import (or "
                        "remove it to train from a fresh initialisation)"
                    ) from e
                aside = self._move_aside(step)
                logging.error(
                    "checkpoint: step %d in %s cannot be read (%s); moved to %s",
                    step,
                    self.directory,
                    reason,
                    aside,
                )
                lost.append(step)
                continue
            if lost:
                logging.warning(
                    "checkpoint: resuming from step %d instead of step %d: the training of "
                    "steps %d-%d is lost and will be redone (damaged: %s)",
                    step,
                    max(lost),
                    step + 1,
                    max(lost),
                    ", ".join(map(str, lost)),
                )
            return state, step
        if lost:
            logging.warning(
                "checkpoint: no readable checkpoint left (damaged: %s): starting from scratch",
                ", ".join(map(str, lost)),
            )
        return None

    def _move_aside(self, step: int) -> epath.Path:
        """Moves ``<directory>/<step>`` to ``<workdir>/damaged_checkpoints/`` (process 0)."""
        from primus_jax import distributed

        target_dir = self.directory.parent / DAMAGED_DIR
        target = target_dir / f"{step}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        if jax.process_index() == 0:
            target_dir.mkdir(parents=True, exist_ok=True)
            (self.directory / str(step)).rename(target)
        distributed.wait_for_all_processes(f"checkpoint_moved_{step}")
        self.manager.reload()
        return target

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        try:
            self._verify_pending()
        finally:
            self.manager.close()


class PreemptionWatcher:
    """Turns SIGTERM (the preemption notice of TPU VMs, SLURM, Kubernetes) into a flag.

    The train loop polls :meth:`reached` after every step; when it is set the loop saves a
    checkpoint and exits cleanly, and the next start resumes from it. With several processes
    JAX's preemption sync point is used instead, so that all hosts stop at the same step.
    """

    def __init__(self):
        self._flag = threading.Event()
        self._previous = None
        self._multi = jax.process_count() > 1
        if not self._multi and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del frame
        logging.warning("received signal %d: will checkpoint and stop after this step", signum)
        self._flag.set()

    def reached(self, step: int) -> bool:
        if self._multi:
            from jax.experimental import multihost_utils

            try:
                return multihost_utils.reached_preemption_sync_point(step)
            except RuntimeError:  # preemption service not initialised
                return False
        return self._flag.is_set()

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


class CheckpointNotFound(cli_errors.UserError, FileNotFoundError):
    """The path given as a checkpoint holds none; the message names it."""


def resolve_checkpoint(path) -> tuple[epath.Path, int]:
    """Finds ``(checkpoints_dir, step)`` from a workdir, its ``checkpoints/`` folder or one
    step folder inside it (the latest step unless a step folder is given)."""
    p = absolute_path(path)
    if not p.exists():
        raise CheckpointNotFound(f"checkpoint path {p} does not exist")
    if (p / "state").exists() and p.name.isdigit():
        return p.parent, int(p.name)
    if (p / "checkpoints").is_dir():
        p = p / "checkpoints"
    steps = sorted(int(c.name) for c in p.iterdir() if c.name.isdigit() and (c / "state").exists())
    if not steps:
        raise CheckpointNotFound(
            f"no checkpoint under {path}: expected <workdir>/checkpoints/<step>/state "
            "(written by primus_jax.main or primus_jax.tools.import_torch)"
        )
    return p, steps[-1]


def load_checkpoint_params(path):
    """Restores the trainable parameters (encoder and temperatures) of a checkpoint.

    Args:
      path: a workdir, its ``checkpoints/`` directory, or one ``checkpoints/<step>`` folder.

    Returns:
      ``(params, config_dict, step)``: ``params = {"encoder": <linen params>,
      "log_tau_mm": ..., "log_tau_ss": ..., ...}`` as numpy arrays (independent of the
      device topology it was saved on), the run's config as a plain dict (from the
      checkpoint's metadata, or ``<workdir>/config.json``), and the step.
    """
    import json

    import numpy as np

    ckpt_dir, step = resolve_checkpoint(path)
    handler = ocp.PyTreeCheckpointer()
    state_dir = ckpt_dir / str(step) / "state"
    tree = handler.metadata(state_dir).item_metadata.tree
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    restored = handler.restore(state_dir, restore_args=args)
    meta_file = ckpt_dir / str(step) / "meta" / "metadata"
    config = None
    if meta_file.exists():
        config = json.loads(meta_file.read_text()).get("config")
    if config is None and (ckpt_dir.parent / "config.json").exists():
        config = json.loads((ckpt_dir.parent / "config.json").read_text())
    return restored["params"], config, step


def load_encoder_params(path):
    """``(encoder_params, config_dict, step)``: what inference needs from a checkpoint (see
    :func:`load_checkpoint_params`)."""
    params, config, step = load_checkpoint_params(path)
    return params["encoder"], config, step
