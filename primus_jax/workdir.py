"""One writer per workdir, and a writable workdir before anything is compiled.

``<workdir>/.lock`` is a small JSON record of its owner: host, boot id, pid, the pid's start
time, the run's start time and a heartbeat that a daemon thread refreshes. A second run on
the same workdir (a double submit, a requeued job while the old one still runs) refuses with
:class:`WorkdirLockedError` naming the owner. A lock is stale, and is taken over with a
warning, when its owner is gone on this host (no such pid, or the pid is another process),
or, from another host, when its heartbeat is older than ``train.lock_lease_s`` (shared file
systems, multi-host and preempted runs). With several processes, process 0 takes the lock
and the others wait for it.

Local paths use an atomic exclusive create and rename; other ``epath`` paths (gs://) write
the record and read it back (last writer wins a simultaneous start, the other refuses).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid

from absl import logging
from etils import epath

from primus_jax import cli_errors

LOCK_NAME = ".lock"


class WorkdirError(cli_errors.RunFault, OSError):
    """The workdir cannot be written (read-only, no permission, full disk)."""


class WorkdirLockedError(cli_errors.RunFault, RuntimeError):
    """Another live run holds the workdir's lock."""


def _path(workdir) -> epath.Path:
    p = os.fspath(workdir)
    return epath.Path(p if "://" in p else os.path.abspath(os.path.expanduser(p)))


def _is_local(path: epath.Path) -> bool:
    return "://" not in os.fspath(path)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_start(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot ("" if unknown): tells a live
    owner from a new process that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_record() -> dict:
    now = time.time()
    return {
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": os.getpid(),
        "pid_start": _pid_start(os.getpid()),
        "started": now,
        "heartbeat": now,
        "token": uuid.uuid4().hex,
    }


def describe(record: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.get("started", 0)))
    return f"host {record.get('host')!r}, pid {record.get('pid')}, started {started}"


def stale_reason(record: dict, lease_s: float, now: float | None = None) -> str | None:
    """Why the lock ``record`` is stale, or None if its owner may still be running."""
    now = time.time() if now is None else now
    same_host = record.get("host") == socket.gethostname() and record.get("boot_id") == _boot_id()
    if same_host:
        pid = int(record.get("pid", -1))
        if not _pid_alive(pid):
            return f"its owner (pid {pid}) is gone on this host"
        if record.get("pid_start") and _pid_start(pid) != record["pid_start"]:
            return f"pid {pid} is now another process"
        return None
    age = now - float(record.get("heartbeat", 0))
    if age > lease_s:
        return f"not refreshed for {age:.0f} s > train.lock_lease_s={lease_s:g} s"
    return None


def _writable_error(path: epath.Path, e: OSError) -> WorkdirError:
    name = errno.errorcode.get(e.errno, "") if e.errno else ""
    return WorkdirError(
        e.errno,
        f"workdir {path} is not writable ({name}: {e.strerror or e}); nothing was written; "
        "give a writable --workdir (or free space) and rerun",
    )


def check_writable(*dirs) -> None:
    """Creates each directory and writes, reads and removes a probe file in it; raises
    :class:`WorkdirError` naming the directory and the errno (EACCES, EROFS, ENOSPC)."""
    for d in dirs:
        d = _path(d)
        probe = d / f".write_probe.{os.getpid()}"
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok")
            if probe.read_text() != "ok":
                raise OSError(errno.EIO, "probe file read back differs")
            probe.unlink()
        except OSError as e:
            raise _writable_error(d, e) from e


def _read(lock: epath.Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return {}  # unreadable or half-written: treated as a lock without an owner


class WorkdirLock:
    """Held from :meth:`acquire` to :meth:`release`; refreshes its heartbeat meanwhile."""

    def __init__(self, workdir, *, lease_s: float):
        self.path = _path(workdir) / LOCK_NAME
        self.lease_s = float(lease_s)
        self.record: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _create(self, record: dict) -> bool:
        text = json.dumps(record)
        if _is_local(self.path):
            try:
                fd = os.open(os.fspath(self.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return True
        if self.path.exists():
            return False
        self.path.write_text(text)
        time.sleep(0.5)  # let a simultaneous writer land, then see who won
        return (_read(self.path) or {}).get("token") == record["token"]

    def _remove_stale(self, record: dict) -> None:
        if _is_local(self.path):
            # Rename first: of two runs taking over one stale lock, one rename fails.
            aside = self.path.parent / f"{LOCK_NAME}.stale.{os.getpid()}"
            try:
                os.rename(os.fspath(self.path), os.fspath(aside))
            except FileNotFoundError:
                return
            os.unlink(os.fspath(aside))
        else:
            self.path.unlink(missing_ok=True)

    def acquire(self) -> WorkdirLock:
        record = owner_record()
        for _ in range(5):
            try:
                if self._create(record):
                    self.record = record
                    self._start_heartbeat()
                    return self
            except OSError as e:
                raise _writable_error(self.path.parent, e) from e
            held = _read(self.path)
            if held is None:
                continue  # released meanwhile
            why = "its record is unreadable" if not held else stale_reason(held, self.lease_s)
            if why is None:
                raise WorkdirLockedError(
                    f"workdir {self.path.parent} is in use by another run ({describe(held)}): "
                    f"refusing to write into it. Wait for that run, use another --workdir, or, "
                    f"if it is gone on another host, wait train.lock_lease_s={self.lease_s:g} s "
                    f"after its last heartbeat or delete {self.path}"
                )
            logging.warning(
                "workdir: taking over the stale lock %s (%s): %s", self.path, describe(held), why
            )
            self._remove_stale(held)
        raise WorkdirLockedError(f"could not take the lock {self.path}: it keeps changing")

    def _rewrite(self) -> None:
        text = json.dumps(self.record)
        if not _is_local(self.path):
            self.path.write_text(text)  # an object store replaces objects atomically
            return
        tmp = self.path.parent / f"{LOCK_NAME}.tmp.{os.getpid()}"
        tmp.write_text(text)
        os.replace(os.fspath(tmp), os.fspath(self.path))

    def _start_heartbeat(self) -> None:
        period = max(1.0, min(60.0, self.lease_s / 4))

        def beat():
            while not self._stop.wait(period):
                try:
                    self.record["heartbeat"] = time.time()
                    self._rewrite()
                except OSError as e:  # a full disk: the next save reports it
                    logging.warning("workdir: could not refresh %s: %s", self.path, e)

        self._thread = threading.Thread(target=beat, name="workdir-lock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        if self.record is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if (_read(self.path) or {}).get("token") == self.record["token"]:
                self.path.unlink()
        except OSError as e:
            logging.warning("workdir: could not remove %s: %s", self.path, e)
        self.record = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def hold(workdir, *, lease_s: float, process_index: int = 0, subdirs=()) -> WorkdirLock:
    """Checks that ``workdir`` (and ``subdirs`` in it) is writable and takes its lock
    (process 0; the others get an unheld lock object and wait for process 0 at
    :func:`distributed.wait_for_all_processes`)."""
    from primus_jax import distributed

    lock = WorkdirLock(workdir, lease_s=lease_s)
    if process_index == 0:
        check_writable(workdir)
        lock.acquire()  # before anything else is written
        try:
            check_writable(*(_path(workdir) / d for d in subdirs))
        except WorkdirError:
            lock.release()
            raise
    distributed.wait_for_all_processes("workdir_lock")
    return lock
