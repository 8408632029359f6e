"""Ego4D metadata: where the files are, scenario classes, and narrations.

Files (as written by the Ego4D CLI, ``ego4d --datasets imu annotations metadata``)::

    <root>/ego4d.json                        {"videos": [{"video_uid", "scenarios": [str],
                                              "duration_sec", ...}, ...]}
    <root>/v2/annotations/narration.json     {video_uid: {"narration_pass_1": {"narrations":
                                              [{"timestamp_sec", "narration_text", ...}]},
                                              "narration_pass_2": {...}}}
    <root>/v2/imu/<video_uid>.csv            one CSV per video that has IMU

``v2_1/`` is accepted in place of ``v2/`` (the CLI's IMU default version), and ``ego4d.json``
may also sit in ``v2/``.
"""

from __future__ import annotations

import dataclasses
import json
import re

from etils import epath

from tfds_builders import narration

# The 10 downstream classes of the PRIMUS Ego4D evaluation, in its order. A video's class
# comes from the Ego4D scenario names in ego4d.json (videos[*].scenarios): a scenario matches
# a class when it contains one of the class's keywords (case-insensitive).
SCENARIO_CLASSES = (
    "carpentry",
    "cleaning",
    "cooking",
    "crafting",
    "eating",
    "farmer",
    "household",
    "music",
    "walking",
    "construction",
)
SCENARIO_KEYWORDS = {
    "carpentry": ("carpent", "woodwork"),
    "cleaning": ("cleaning",),
    "cooking": ("cooking",),
    "crafting": ("crafting", "knitting", "sewing"),
    "eating": ("eating",),
    "farmer": ("farmer", "farming"),
    "household": ("household",),
    "music": ("music",),
    "walking": ("walking",),
    "construction": ("construction",),
}


@dataclasses.dataclass(frozen=True)
class Narration:
    """One camera-wearer narration: time on the video timeline and cleaned text."""

    t: float
    text: str


def find_file(root: epath.Path, candidates: tuple[str, ...]) -> epath.Path | None:
    """The first existing ``root/<candidate>``."""
    for c in candidates:
        if (root / c).exists():
            return root / c
    return None


def imu_dir(root: epath.Path) -> epath.Path | None:
    return find_file(root, ("v2/imu", "v2_1/imu", "imu"))


def scenario_class(scenarios: list[str]) -> tuple[int, str]:
    """Resolves a video's scenario list to a class index.

    Returns:
        ``(label, status)``: the class index and ``"ok"`` when the scenarios match exactly one
        class; ``-1`` and ``"no_class"`` when none matches; ``-1`` and ``"ambiguous"`` when
        they match two or more classes (such videos are not forced into one class).
    """
    matched = set()
    for s in scenarios:
        s = s.lower()
        for i, cls in enumerate(SCENARIO_CLASSES):
            if any(k in s for k in SCENARIO_KEYWORDS[cls]):
                matched.add(i)
    if len(matched) == 1:
        return matched.pop(), "ok"
    return -1, "ambiguous" if matched else "no_class"


def load_videos(path: epath.Path) -> dict[str, dict]:
    """``{video_uid: video record}`` from ``ego4d.json``."""
    with path.open("rb") as f:
        meta = json.load(f)
    return {v["video_uid"]: v for v in meta.get("videos", []) if "video_uid" in v}


def load_narrations(path: epath.Path, uids: set[str]) -> dict[str, list[Narration]]:
    """Camera-wearer (``#C``) narrations of both passes, cleaned, per video, sorted by time.

    Only ``#C`` narrations are kept, as in IMU2CLIP: the IMU is on the camera wearer, so
    ``#O`` (someone else) narrations do not describe the IMU signal. Narrations whose cleaned
    text is empty or whose timestamp is missing are dropped.
    """
    with path.open("rb") as f:
        data = json.load(f)
    out: dict[str, list[Narration]] = {}
    for uid in uids:
        items = []
        for pass_name in ("narration_pass_1", "narration_pass_2"):
            for n in (data.get(uid) or {}).get(pass_name, {}).get("narrations", []) or []:
                raw, t = n.get("narration_text", ""), n.get("timestamp_sec")
                if t is None or not narration.is_camera_wearer(raw):
                    continue
                text = narration.clean_narration(raw)
                if text:
                    items.append(Narration(float(t), text))
        # Stable sort: at equal times pass 1 comes first.
        out[uid] = sorted(items, key=lambda n: n.t)
    return out


_UID = re.compile(r"^[0-9A-Za-z_-]+$")


def is_uid(name: str) -> bool:
    """Video uids are UUID-like; anything else (e.g. "._foo") is not an IMU file."""
    return bool(_UID.match(name))
