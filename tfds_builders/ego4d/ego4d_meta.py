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
# comes from the Ego4D scenario names in ego4d.json (videos[*].scenarios), by the reference's
# exact single-scenario rule (scenario_class, rule="reference") or by keywords ("keyword").
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
# The reference's 15 scenario names (Nokia-Bell-Labs/pretrained-imu-encoders, first commit
# 6a983a5, scripts/construct_ego_labels.py `label_map`), verbatim; the construction name holds
# a newline, as in Ego4D's scenario table (facebookresearch/Ego4d,
# ego4d/internal/validation/standard_metadata/ego4d/scenario.csv, id 97). custom_split_ego.py
# then drops 0, 3, 6, 9, 11 and renumbers the other ten to SCENARIO_CLASSES' order.
REFERENCE_SCENARIOS = (
    "Car mechanic",
    "Carpenter",
    "Cleaning / laundry",
    "Clothes, other shopping",
    "Cooking",
    "Crafting/knitting/sewing/drawing/painting",
    "Doing yardwork / shoveling snow",
    "Eating",
    "Farmer",
    "Grocery shopping indoors",
    "Household management - caring for kids",
    "Playing cards",
    "Practicing a musical instrument",
    "Walking on street",
    "jobs related to construction/renovation company\n"
    "(Director of work, tiler, plumber, Electrician, Handyman, etc)",
)
_REFERENCE_TO_CLASS = {1: 0, 2: 1, 4: 2, 5: 3, 7: 4, 8: 5, 10: 6, 12: 7, 13: 8, 14: 9}
SCENARIO_RULES = ("reference", "keyword")


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


def reference_scenario(scenarios: list[str]) -> int | None:
    """The reference's 15-class index: the video has exactly one scenario and it equals one
    of ``REFERENCE_SCENARIOS`` exactly; else ``None``."""
    if len(scenarios) == 1 and scenarios[0] in REFERENCE_SCENARIOS:
        return REFERENCE_SCENARIOS.index(scenarios[0])
    return None


def scenario_class(scenarios: list[str], rule: str = "reference") -> tuple[int, str]:
    """Resolves a video's scenario list to a class index of ``SCENARIO_CLASSES``.

    Args:
        scenarios: ``videos[*].scenarios`` of ego4d.json.
        rule: ``"reference"`` (default): the PRIMUS scripts' rule, exactly one scenario, equal
            to one of the ten class scenarios. ``"keyword"``: the builder's earlier rule, any
            scenario containing a class keyword (``SCENARIO_KEYWORDS``), the union over the
            video's scenarios being exactly one class; it also labels near misses such as
            "Farmers market" or "Listening to music".

    Returns:
        ``(label, status)``: the class index and ``"ok"``, or ``-1`` and why:
        ``"no_scenario"``, ``"multi_scenario"`` (reference rule), ``"ambiguous"`` (keyword
        rule: two or more classes), ``"no_class"``.
    """
    if rule == "reference":
        if not scenarios:
            return -1, "no_scenario"
        if len(scenarios) > 1:
            return -1, "multi_scenario"
        ref = reference_scenario(scenarios)
        if ref is None or ref not in _REFERENCE_TO_CLASS:
            return -1, "no_class"
        return _REFERENCE_TO_CLASS[ref], "ok"
    if rule != "keyword":
        raise ValueError(f"scenario_rule {rule!r}: expected one of {SCENARIO_RULES}")
    matched = set()
    for s in scenarios:
        s = s.lower()
        for i, cls in enumerate(SCENARIO_CLASSES):
            if any(k in s for k in SCENARIO_KEYWORDS[cls]):
                matched.add(i)
    if len(matched) == 1:
        return matched.pop(), "ok"
    return -1, "ambiguous" if matched else "no_class"


REFERENCE_SEED = 42


def reference_split(videos: list[dict]) -> dict[str, str]:
    """The reference's 80/10/10 video split, ``{video_uid: split}``.

    As the PRIMUS first commit's ``custom_split_ego.py`` (its split block): over every
    ego4d.json video with one of the 15 ``REFERENCE_SCENARIOS`` (in the order
    ``construct_ego_labels.py`` builds ``class2video``: classes by first appearance, videos in
    file order), ``train_test_split(test_size=0.2, random_state=42, stratify=y)``, then the
    20% halved the same way into val and test; ``y`` is the 15-class index. Needs
    scikit-learn. Raises ``ValueError`` if a class is too small to stratify.
    """
    try:
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - sklearn is in the test env
        raise ImportError(
            "ego4d config split='reference' needs scikit-learn (pip install scikit-learn)"
        ) from e
    class2video: dict[int, list[str]] = {}
    for v in videos:
        ref = reference_scenario(v.get("scenarios") or [])
        if ref is not None and "video_uid" in v:
            class2video.setdefault(ref, []).append(v["video_uid"])
    class2dict = {uid: k for k, uids in class2video.items() for uid in uids}
    x, y = list(class2dict), list(class2dict.values())
    try:
        x_train, x_temp, _, y_temp = train_test_split(
            x, y, test_size=0.2, random_state=REFERENCE_SEED, stratify=y
        )
        x_val, x_test, _, _ = train_test_split(
            x_temp, y_temp, test_size=0.5, random_state=REFERENCE_SEED, stratify=y_temp
        )
    except ValueError as e:
        raise ValueError(
            f"ego4d config split='reference': the reference's stratified 80/10/10 split "
            f"fails on these {len(x)} videos ({e})"
        ) from e
    out = dict.fromkeys(x_train, "train")
    out.update(dict.fromkeys(x_val, "val"))
    out.update(dict.fromkeys(x_test, "test"))
    return out


def participant(video: dict) -> str | None:
    """``participant<N>`` from ``fb_participant_id`` (ego4d.json schema), or ``None``."""
    pid = video.get("fb_participant_id")
    if pid is None or isinstance(pid, bool):
        return None
    try:
        return f"participant{int(float(pid))}"
    except (TypeError, ValueError, OverflowError):
        return None


def _load_json(path: epath.Path):
    """``json.load`` whose errors name the file (damaged downloads are common)."""
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def load_videos(path: epath.Path) -> dict[str, dict]:
    """``{video_uid: video record}`` from ``ego4d.json``."""
    meta = _load_json(path)
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, list):
        raise ValueError(f"{path}: no 'videos' list (ego4d.json schema)")
    out = {}
    for v in videos:
        if isinstance(v, dict) and isinstance(v.get("video_uid"), str):
            scenarios = v.get("scenarios")
            if scenarios is not None and not (
                isinstance(scenarios, list) and all(isinstance(x, str) for x in scenarios)
            ):
                raise ValueError(
                    f"{path}: video {v['video_uid']}: 'scenarios' is not a list of str"
                )
            out[v["video_uid"]] = v
    return out


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
    data = _load_json(path)
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
