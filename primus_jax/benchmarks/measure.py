"""What every benchmark record carries, measured one way for JAX and PyTorch alike.

``machine_fields()`` gives ``cpu_model`` and ``cpu_id`` (family and model numbers),
``peak_rss_mb`` (this process's peak resident set, ``getrusage``) and the XLA flags and
allocator settings in force. ``run_child(cmd)`` runs a benchmark as a child process and reads
its peak RSS from the kernel's accounting of that child (``os.wait4``), so a JAX run and a
PyTorch run compared side by side are measured by the same code
(``primus_jax.benchmarks.vs_torch``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time

# Environment variables that change a CPU step's speed (docs/benchmarks.md).
ENV_KEYS = ("XLA_FLAGS", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX", "OMP_NUM_THREADS")


def _first_cpu(cpuinfo: str | None = None) -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (or of ``cpuinfo``); {} if unreadable."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return {}
    fields = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The host CPU's model name (``/proc/cpuinfo``), or ``platform.processor()``."""
    return _first_cpu().get("model name") or platform.processor() or platform.machine()


def cpu_id(cpuinfo: str | None = None) -> str:
    """Vendor, family and model numbers (``/proc/cpuinfo``), e.g. ``AuthenticAMD family 25
    model 1``: the model name alone ("AMD EPYC") does not tell a Zen 3 (model 1) from a Zen 4
    (model 17), which differ in vector units and in speed. "" where unknown."""
    fields = _first_cpu(cpuinfo)
    if "cpu family" not in fields or "model" not in fields:
        return ""
    vendor = fields.get("vendor_id", "")
    return f"{vendor} family {fields['cpu family']} model {fields['model']}".strip()


def cpu_flags() -> list[str]:
    """The vector/matrix extensions that decide GEMM speed (avx2, avx512*, amx*)."""
    flags = _first_cpu().get("flags", "").split()
    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))


def peak_rss_mb() -> float:
    """Peak resident set of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def xla_flags() -> list[str]:
    return os.environ.get("XLA_FLAGS", "").split()


def machine_fields() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "peak_rss_mb": peak_rss_mb(),
        "xla_flags": xla_flags(),
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


# Runs argv[3:] as its child and writes the child's exit code and ru_maxrss to argv[1]. Why a
# launcher: a forked process starts from its parent's memory map, and the kernel carries that
# map's high-water mark into ru_maxrss across exec, so a child forked straight from a large
# process (a test worker, a notebook) would report the parent's size. The launcher is small,
# so the grandchild's ru_maxrss is its own.
_LAUNCHER = """
import json, os, subprocess, sys, time
result, timeout, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
proc = subprocess.Popen(cmd)
deadline = time.monotonic() + timeout if timeout > 0 else None
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if deadline is not None and time.monotonic() > deadline:
        proc.kill()
        pid, status, usage = os.wait4(proc.pid, 0)
        break
    time.sleep(0.05)
with open(result, "w") as f:
    json.dump({"code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}, f)
"""


def run_child(cmd: list[str], *, env: dict | None = None, timeout: float | None = None) -> dict:
    """Runs ``cmd``; returns its last JSON stdout line, wall time, exit code and peak RSS.

    ``peak_rss_mb`` is the child's own ``ru_maxrss`` as the kernel reports it to ``os.wait4``
    (MiB), taken by a small launcher process (see ``_LAUNCHER``): the same figure whatever the
    child runs (JAX, PyTorch) and whatever process calls this. ``timeout`` kills the child.
    """
    import tempfile

    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        result = os.path.join(tmp, "result.json")
        argv = [sys.executable, "-c", _LAUNCHER, result, str(timeout or 0), *cmd]
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=out, stderr=err, env=env, text=True, check=False)
        wall = time.perf_counter() - t0
        with open(result) as f:
            child = json.load(f)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    record = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                record = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    return {
        "returncode": child["code"],
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(child["maxrss_kb"] / 1024, 1),
        "record": record,
        "stderr": stderr,
    }


def run_record(cmd: list[str], *, env: dict | None = None, timeout: float | None = None) -> dict:
    """:func:`run_child` for a benchmark child: its JSON record with ``peak_rss_mb`` added.

    Raises ``RuntimeError`` naming the command, its exit code and wall time, and the end of
    its stderr, when it failed or printed no JSON line."""
    r = run_child(cmd, env=env, timeout=timeout)
    if r["returncode"] != 0 or not r["record"]:
        bound = f"; killed at the {timeout:g} s bound if negative" if timeout else ""
        raise RuntimeError(
            f"{' '.join(cmd)} failed (exit {r['returncode']}, {r['wall_s']} s{bound}):\n"
            f"{r['stderr'][-2000:]}"
        )
    return {**r["record"], "peak_rss_mb": r["peak_rss_mb"]}
