"""Where a compiled step's time goes: ``jax.profiler`` thunk events attributed to parts.

XLA:CPU (and GPU) record one event per executed thunk (a fusion, a GEMM, a copy), named as the
instruction in the optimised HLO. Each instruction's metadata names the Python file that made
it, so the time splits into the parts of a PRIMUS step without guessing: the GRU and the rest
of the encoder (forward and backward), the contrastive losses, the NN lookup and queue update,
the optimizer, the augmentation. Shares are of the summed thunk time (all threads), not of
wall time.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import tempfile

# First match wins; matched against the instruction's source_file metadata.
PARTS = (
    ("gru", ("primus_jax/models/gru.py",)),
    ("encoder", ("primus_jax/models/", "flax/linen/")),
    ("losses", ("primus_jax/losses.py",)),
    ("nn_lookup", ("primus_jax/queue.py", "primus_jax/identity.py")),
    ("optimizer", ("optax/", "primus_jax/optim.py")),
    ("augment", ("primus_jax/augment.py",)),
)

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=")
_FRAME = re.compile(r"stack_frame_id=(\d+)")
_FILE = re.compile(r'^(\d+) "(.*)"$')
_LOCATION = re.compile(r"^(\d+) \{file_name_id=(\d+)")
_STACK = re.compile(r"^(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)")


def part_of(source_file: str) -> str | None:
    for part, needles in PARTS:
        if any(n in source_file for n in needles):
            return part
    return None


def instruction_parts(hlo_text: str) -> dict[str, str]:
    """Instruction name -> part, from the optimised HLO's stack-frame tables: the innermost
    frame whose file belongs to a part decides (an Adam op made in optax is the optimizer's,
    a dot made in models/gru.py the GRU's)."""
    files, locations, frames, section = {}, {}, {}, None
    for line in hlo_text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = line
            continue
        if section == "FileNames" and (m := _FILE.match(line)):
            files[m.group(1)] = m.group(2)
        elif section == "FileLocations" and (m := _LOCATION.match(line)):
            locations[m.group(1)] = m.group(2)
        elif section == "StackFrames" and (m := _STACK.match(line)):
            frames[m.group(1)] = (m.group(2), m.group(3))

    def frame_part(frame_id: str) -> str:
        seen = set()
        while frame_id in frames and frame_id not in seen:
            seen.add(frame_id)
            location, parent = frames[frame_id]
            part = part_of(files.get(locations.get(location, ""), ""))
            if part:
                return part
            frame_id = parent
        return "other"

    parts = {}
    for line in hlo_text.splitlines():
        m = _INSTR.match(line)
        if m:
            frame = _FRAME.search(line)
            parts[m.group(1)] = frame_part(frame.group(1)) if frame else "other"
    return parts


def self_times(events) -> collections.Counter:
    """``events``: (start_ns, duration_ns, name) of one thread. Returns name -> time not spent
    in an event it encloses (a loop's or conditional's thunks run inside its own event)."""
    totals = collections.Counter()
    stack = []  # (end_ns, name) of the enclosing events
    for start, duration, name in sorted(events):
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack:
            totals[stack[-1][1]] -= duration
        totals[name] += duration
        stack.append((start + duration, name))
    return totals


def thunk_ns(trace_dir: str) -> dict[str, int]:
    """Self time (ns) per thunk name, summed over every XLA executor thread in a trace.

    A conditional's or a loop's event encloses the events of the thunks it runs on the same
    thread; only the time not spent in an enclosed event counts as its own.
    """
    from jax._src.profiler import ProfileData

    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))
    if not files:
        raise FileNotFoundError(f"no .xplane.pb under {trace_dir}")
    totals = collections.Counter()
    for plane in ProfileData.from_file(files[-1]).planes:
        for line in plane.lines:
            if not line.name.startswith(("tf_XLA", "XLA Ops")):
                continue
            events = [
                (ev.start_ns, ev.duration_ns, ev.name)
                for ev in line.events
                if "ThunkExecutor" not in ev.name and "ThreadPool" not in ev.name
            ]
            totals.update(self_times(events))
    return dict(totals)


def shares(compiled, run, steps: int) -> dict:
    """Runs ``run()`` ``steps`` times under the profiler; returns per-part shares of thunk
    time and the top thunks (with the largest ones placed in no part: instructions the
    compiler made itself, such as zero-filled loop buffers and layout copies)."""
    import jax

    parts = instruction_parts(compiled.as_text())
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        try:
            for _ in range(steps):
                run()
        finally:
            jax.profiler.stop_trace()
        ns = thunk_ns(d)
    by_part = collections.Counter()
    for name, t in ns.items():
        by_part[parts.get(name, "other")] += t
    total = sum(by_part.values()) or 1
    ranked = sorted(ns.items(), key=lambda kv: -kv[1])
    top = ranked[:8] + [kv for kv in ranked[8:] if parts.get(kv[0], "other") == "other"][:4]
    return {
        "shares": {
            p: round(t / total, 4) for p, t in sorted(by_part.items(), key=lambda kv: -kv[1])
        },
        "thunk_ms_per_step": round(total / steps / 1e6, 2),
        "top_thunks": [
            {"name": n, "part": parts.get(n, "other"), "ms_per_step": round(t / steps / 1e6, 2)}
            for n, t in top
        ],
    }
