"""One writer per workdir, with real processes: a second ``primus_jax.main`` on a locked
workdir refuses in one line before writing anything; a lock whose owner was killed (-9) is
stale and taken over; a lock from another host is stale only after its lease; a read-only
workdir is refused before anything is compiled."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from support import REPO, xla_flags

from primus_jax import workdir

HOLDER = (
    "import sys, time\n"
    "from primus_jax import workdir\n"
    "workdir.hold(sys.argv[1], lease_s=600)\n"
    "print('held', flush=True)\n"
    "time.sleep(300)\n"
)


def _env():
    return dict(os.environ, XLA_FLAGS=xla_flags(), JAX_PLATFORMS="cpu")


def _main(wd, *extra, wrap=()):
    cmd = [sys.executable, "-m", "primus_jax.main", "--config=configs/smoke.py", f"--workdir={wd}"]
    return subprocess.run(
        [*wrap, *cmd, *extra], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )


def test_second_writer_refuses_and_a_killed_owners_lock_is_taken_over(tmp_path, caplog):
    wd = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(wd)], cwd=REPO, env=_env(), stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        record = json.loads((wd / ".lock").read_text())
        assert record["pid"] == holder.pid and record["host"] == socket.gethostname()

        r = _main(wd)  # the same command again: a double submit
        assert r.returncode == 1
        assert "WorkdirLockedError" in r.stderr and f"pid {holder.pid}" in r.stderr
        assert "Traceback" not in r.stderr
        assert sorted(os.listdir(wd)) == [".lock"]  # no config.json, metrics or checkpoints
    finally:
        holder.send_signal(signal.SIGKILL)  # the owner dies without releasing
        holder.wait()

    lock = workdir.WorkdirLock(wd, lease_s=600)
    with caplog.at_level("WARNING"):
        lock.acquire()
    assert f"owner (pid {holder.pid}) is gone on this host" in caplog.text
    assert json.loads((wd / ".lock").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (wd / ".lock").exists()


def _write_lock(wd, **fields):
    wd.mkdir(parents=True, exist_ok=True)
    record = {**workdir.owner_record(), **fields}
    (wd / ".lock").write_text(json.dumps(record))
    return record


def test_lock_of_another_host_is_stale_only_after_its_lease(tmp_path):
    _write_lock(tmp_path, host="node-17", boot_id="x", pid=1, heartbeat=time.time() - 30)
    with pytest.raises(workdir.WorkdirLockedError, match=r"in use by another run .*'node-17'"):
        workdir.WorkdirLock(tmp_path, lease_s=60).acquire()
    _write_lock(tmp_path, host="node-17", boot_id="x", pid=1, heartbeat=time.time() - 90)
    lock = workdir.WorkdirLock(tmp_path, lease_s=60).acquire()  # preempted elsewhere
    lock.release()


def test_lock_of_a_reused_pid_is_stale(tmp_path):
    _write_lock(tmp_path, pid=os.getpid(), pid_start="1")  # our pid, but an older process
    assert "another process" in workdir.stale_reason(
        json.loads((tmp_path / ".lock").read_text()), 60
    )
    _write_lock(tmp_path)  # ourselves, alive: a second train_and_evaluate in this process
    with pytest.raises(workdir.WorkdirLockedError):
        workdir.WorkdirLock(tmp_path, lease_s=60).acquire()


def test_heartbeat_is_refreshed(tmp_path):
    lock = workdir.WorkdirLock(tmp_path, lease_s=4).acquire()  # refreshed every second
    first = json.loads((tmp_path / ".lock").read_text())["heartbeat"]
    time.sleep(1.6)
    assert json.loads((tmp_path / ".lock").read_text())["heartbeat"] > first
    lock.release()


def test_read_only_workdir_is_refused_before_compiling(tmp_path):
    wd = tmp_path / "ro"
    wd.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits: remount the directory read-only
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
        if probe.returncode:
            pytest.skip("root without mount namespaces: no way to make a read-only directory")
        script = f'mount --bind -o ro "{wd}" "{wd}" && exec "$0" "$@"'
        r = _main(wd, wrap=("unshare", "-m", "sh", "-c", script))
        code = "EROFS"
    else:
        wd.chmod(0o555)
        r = _main(wd)
        code = "EACCES"
    assert r.returncode == 1, r.stderr[-2000:]
    assert "WorkdirError" in r.stderr and code in r.stderr and "not writable" in r.stderr
    assert "compiled" not in r.stderr and "Traceback" not in r.stderr
