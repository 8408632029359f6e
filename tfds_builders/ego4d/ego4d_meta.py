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
# Zero-shot prompts per class, in SCENARIO_CLASSES order: the reference's TEXT_PROMPTS verbatim
# (Nokia-Bell-Labs/pretrained-imu-encoders at 87e76db = 43874dc^, downstream_evaluation/
# classification_downstream_ego4d_custom.py:61-72, the 10-class table in use there), 9-10 per
# class. The builder writes them to info.metadata["class_prompts"].
CLASS_PROMPTS = (
    (
        "Carpentry / woodworking",
        "building a table",
        "sanding wood",
        "cutting wood",
        "assembling furniture",
        "measuring and marking wood",
        "applying wood stain",
        "drilling holes",
        "carving wood",
        "repairing wooden furniture",
    ),
    (
        "Cleaning / laundry",
        "vacuuming the floor",
        "dusting furniture",
        "washing dishes",
        "mopping the floor",
        "doing laundry",
        "folding clothes",
        "cleaning windows",
        "scrubbing the bathroom",
        "taking out the trash",
    ),
    (
        "Cooking",
        "chopping vegetables",
        "stirring a pot",
        "baking a cake",
        "frying food",
        "grilling meat",
        "seasoning dishes",
        "boiling water",
        "making a salad",
        "preparing ingredients",
    ),
    (
        "Crafting/knitting/sewing/drawing/painting",
        "knitting a scarf",
        "sewing clothes",
        "drawing a picture",
        "painting a canvas",
        "making jewelry",
        "crafting with paper",
        "pottery",
        "cross-stitching",
        "wood burning",
    ),
    (
        "Eating",
        "having a meal",
        "snacking",
        "drinking coffee",
        "eating dessert",
        "having a picnic",
        "dining out",
        "eating at home",
        "enjoying a buffet",
    ),
    (
        "Farmer",
        "planting seeds",
        "harvesting crops",
        "feeding livestock",
        "milking cows",
        "driving a tractor",
        "fixing farm equipment",
        "watering fields",
        "collecting eggs",
        "baling hay",
    ),
    (
        "Household management - caring for kids",
        "feeding children",
        "changing diapers",
        "helping with homework",
        "playing with kids",
        "reading bedtime stories",
        "preparing school lunches",
        "bathing children",
        "organizing playdates",
    ),
    (
        "Practicing a musical instrument",
        "playing the piano",
        "strumming a guitar",
        "playing the violin",
        "practicing the flute",
        "drumming",
        "playing the trumpet",
        "tuning an instrument",
        "reading sheet music",
    ),
    (
        "Walking on street",
        "strolling down the street",
        "walking with a friend",
        "walking a dog",
        "window shopping",
        "walking to work",
        "walking in a park",
        "crossing the street",
        "walking briskly",
    ),
    (
        "jobs related to construction/renovation company (Director of work, tiler, plumber, Electrician, Handyman, etc)",  # noqa: E501 (verbatim)
        "directing construction work",
        "laying tiles",
        "installing plumbing",
        "wiring electrical systems",
        "repairing pipes",
        "painting walls",
        "installing flooring",
        "fixing leaks",
        "building scaffolding",
    ),
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


def load_narrations(
    path: epath.Path, uids: set[str], narrators: str = "wearer"
) -> dict[str, list[Narration]]:
    """Camera-wearer (``#C``) narrations of both passes, cleaned, per video, sorted by time.

    With ``narrators="wearer"`` (default) only ``#C`` narrations are kept, as in IMU2CLIP: the
    IMU is on the camera wearer, so ``#O`` (someone else) narrations do not describe the IMU
    signal; ``"all"`` keeps them too (``SegmentConfig.narrators``). Narrations whose cleaned
    text is empty or whose timestamp is missing are dropped.
    """
    narration.check_narrators(narrators)
    with path.open("rb") as f:
        data = json.load(f)
    out: dict[str, list[Narration]] = {}
    for uid in uids:
        items = []
        for pass_name in ("narration_pass_1", "narration_pass_2"):
            for n in (data.get(uid) or {}).get(pass_name, {}).get("narrations", []) or []:
                raw, t = n.get("narration_text", ""), n.get("timestamp_sec")
                if t is None or (narrators == "wearer" and not narration.is_camera_wearer(raw)):
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
