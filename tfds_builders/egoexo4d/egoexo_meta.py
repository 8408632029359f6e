"""EgoExo4D takes index, atomic descriptions, take-level classes and split assignment."""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from collections.abc import Callable

from etils import epath

from tfds_builders import narration, raw_io, splits
from tfds_builders.egoexo4d import timesync

# The 8 take-level classes of the PRIMUS downstream task, in the reference's index order
# (P:scripts/construct_egoexo_labels.py:99-108). A take's class is the first class (in this
# order) with a keyword that is a substring of the lower-cased take name; none -> unlabelled.
TAKE_CLASSES = (
    "medical_test",
    "bike_repair",
    "rock_climbing",
    "soccer_basketball",
    "cpr",
    "cooking",
    "dance",
    "music",
)
# Zero-shot prompts per class, in TAKE_CLASSES order: the reference's TEXT_PROMPTS verbatim
# (Nokia-Bell-Labs/pretrained-imu-encoders, downstream_evaluation/
# classification_downstream_egoexo4d.py:37-46, unchanged from 6a983a5 to 562e142), 5-8 per class,
# typos and capitals included. The builder writes them to info.metadata["class_prompts"].
CLASS_PROMPTS = (
    (
        "COVID-19 test",
        "Taking a PCR test",
        "Receiving a COVID-19 vaccine",
        "Waiting in line for a COVID-19 test",
        "Reading a COVID-19 test result",
        "Medical staff administering a COVID-19 test",
    ),
    (
        "repairing a bicycle",
        "Fixing a flat tire",
        "Adjusting bicycle brakes",
        "Lubricating the bicycle chain",
        "Replacing a bicycle chain",
        "Aligning bicycle wheels",
    ),
    (
        "rock climbing",
        "bouldering",
        "Climbing an indoor rock wall",
        "Using climbing gear (harness, carabiners)",
        "Planning a climbing route",
        "Reaching the summit of a climb",
        "Practicing bouldering techniques",
    ),
    (
        "playing soccer",
        "playing basketball",
        "Dribbling a soccer ball",
        "Shooting a soccer goal",
        "Passing a basketball",
        "Performing a slam dunk",
        "Playing a soccer match",
        "Engaging in a basketball game",
    ),
    (
        "performing CPR",
        "Checking for a pulse",
        "Giving chest compressions",
        "Using an AED (Automated External Defibrillator)",
        "Rescuing breathing",
        "Calling emergency services",
    ),
    (
        "cooking",
        "Chopping vegetables",
        "Baking a cake",
        "Stir-frying in a wok",
        "Following a recipe book",
    ),
    (
        "dancing",
        "Ballet dancing",
        "Salsa dancing",
        "Hip-hop dancing",
        "Ballroom dancing",
        "Practicing dance moves in a studio",
    ),
    (
        "playing a musical instrument",
        "Playing the piano",
        "Strumming a guitar",
        "Playing the violin",
        "Practicing with a band",
        "drumming",
    ),
)
TAKE_KEYWORDS = (
    ("covidtest", "pcr", "covid"),
    ("bike",),
    ("bouldering", "rockclimbing"),
    ("soccer", "basketball"),  # the reference puts basketball in the soccer class
    ("cpr",),
    ("cooking", "omelet", "salad", "sushi"),
    ("dance",),
    ("music", "guitar", "piano", "violin"),
)
PRETRAIN_VAL_FRACTION = 0.1
DOWNSTREAM_FRACTIONS = {"downstream_train": 0.5, "downstream_val": 0.25, "downstream_test": 0.25}
_SALT = "egoexo4d/v1"


@dataclasses.dataclass(frozen=True)
class Take:
    uid: str
    name: str
    subject: str  # "participant_<participant_uid>" when takes.json has one, else the take uid
    take_dir: str  # relative to the root, e.g. "takes/<take_name>"
    duration: float | None
    label: int
    has_participant: bool = False  # takes.json gave a participant_uid
    capture: str = ""  # capture name: captures/<capture>/timesync.csv
    timesync_start_idx: int | None = None  # the take's first frame is row start_idx + 1
    ego_device: str | None = None  # the capture's egocentric Aria camera id, e.g. "aria01"
    # takes.json's vrs_relative_path (noimagestreams), vrs_all_streams_relative_path, if given
    vrs_paths: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """The unit of split assignment: the participant when known, else the take."""
        return self.subject


@dataclasses.dataclass(frozen=True)
class Description:
    t: float
    text: str


def take_class(take_name: str) -> int:
    """Class index from the take name's substrings (reference rules), or -1."""
    name = take_name.lower()
    for i, keywords in enumerate(TAKE_KEYWORDS):
        if any(k in name for k in keywords):
            return i
    return -1


def _load_json(path: epath.Path):
    """``json.load`` with errors that name the file."""
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise raw_io.MalformedFileError(f"{path}: not valid JSON ({e})") from e


def _ego_device(record: dict) -> str | None:
    """The egocentric Aria camera (``capture.cameras[].is_ego``), e.g. ``"aria01"``."""
    cameras = (record.get("capture") or {}).get("cameras") or []
    for cam in cameras if isinstance(cameras, list) else []:
        if (
            isinstance(cam, dict)
            and cam.get("is_ego")
            and str(cam.get("cam_id", "")).startswith("aria")
        ):
            return str(cam["cam_id"])
    return None


def load_takes(path: epath.Path) -> dict[str, Take]:
    """``{take_uid: Take}`` from ``takes.json`` (a list of take records).

    ``participant_uid`` (an integer, e.g. 657) is the take's camera wearer, per the Ego-Exo4D
    metadata documentation (https://docs.ego-exo4d-data.org/data/metadata, "Takes"; the same
    ids index ``participants.json``). ``timesync_start_idx`` and ``capture.capture_name`` locate
    the take in its capture's ``timesync.csv`` (same page; README "Time base").

    Raises:
        raw_io.MalformedFileError: naming the file and the record, on a wrong structure.
    """
    raw = _load_json(path)
    records = raw.get("takes", []) if isinstance(raw, dict) else raw
    if not isinstance(records, list):
        raise raw_io.MalformedFileError(f"{path}: expected a list of takes")
    out = {}
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "take_uid" not in r or "take_name" not in r:
            continue
        try:
            participant = r.get("participant_uid")
            duration = r.get("duration_sec")
            start_idx = r.get("timesync_start_idx")
            capture = (r.get("capture") or {}).get("capture_name")
            name = str(r["take_name"])
            out[str(r["take_uid"])] = Take(
                uid=str(r["take_uid"]),
                name=name,
                subject=f"participant_{participant}"
                if participant is not None
                else str(r["take_uid"]),
                take_dir=str(r.get("root_dir") or f"takes/{name}"),
                duration=float(duration) if duration is not None else None,
                label=take_class(name),
                has_participant=participant is not None,
                capture=timesync.capture_name(name, capture),
                timesync_start_idx=int(start_idx) if start_idx is not None else None,
                ego_device=_ego_device(r),
                vrs_paths=tuple(
                    str(r[k])
                    for k in ("vrs_relative_path", "vrs_all_streams_relative_path")
                    if r.get(k)
                ),
            )
        except (TypeError, ValueError, AttributeError) as e:
            raise raw_io.MalformedFileError(f"{path}: take record {i}: {e}") from e
    return out


def description_subject(d: dict) -> str:
    """``"C"`` (camera wearer) or ``"O"``: the ``subject`` field (``narration_subject`` in the
    docs' sample); when absent, ``"C"`` if the text starts with the wearer's token ``C``."""
    subject = d.get("subject", d.get("narration_subject"))
    if subject in ("C", "O"):
        return subject
    return "C" if str(d.get("text") or "").lstrip().startswith("C ") else "O"


def first_accepted(per_annotator: list) -> dict | None:
    """The first annotation whose ``rejected`` is not true (docs: "whether the annotation job
    was rejected"), or ``None``."""
    for a in per_annotator:
        if isinstance(a, dict) and not a.get("rejected"):
            return a
    return None


def load_descriptions(
    path: epath.Path, note: Callable[[str], None], narrators: str = "wearer"
) -> dict[str, list[Description]]:
    """Cleaned descriptions of each take's first non-rejected annotation, sorted by time.

    One annotation per take, as in the reference (``narr[0]``), but skipping rejected ones
    (``rejected: true``; the reference took the first regardless). ``narrators="wearer"`` keeps
    only ``subject == "C"`` (the IMU is on the camera wearer; the Ego4D builder likewise drops
    ``#O``), ``"all"`` keeps every description. Takes whose annotations are all rejected are
    left out. ``note(what)`` counts ``takes_first_annotation_rejected``,
    ``takes_all_annotations_rejected``, ``descriptions_of_others_dropped`` and
    ``empty_descriptions`` (no text, or no finite timestamp).

    Raises:
        raw_io.MalformedFileError: naming the file, on a wrong structure.
    """
    narration.check_narrators(narrators)
    raw = _load_json(path)
    annotations = raw.get("annotations") if isinstance(raw, dict) else None
    if not isinstance(annotations, dict):
        raise raw_io.MalformedFileError(f"{path}: no 'annotations' object")
    out: dict[str, list[Description]] = {}
    for take_uid, per_annotator in annotations.items():
        if not per_annotator or not isinstance(per_annotator, list):
            continue
        chosen = first_accepted(per_annotator)
        if chosen is not per_annotator[0]:
            note("takes_first_annotation_rejected")
        if chosen is None:
            note("takes_all_annotations_rejected")
            continue
        descriptions = chosen.get("descriptions") or []
        if not isinstance(descriptions, list):
            raise raw_io.MalformedFileError(f"{path}: {take_uid}: 'descriptions' is not a list")
        items = []
        for d in descriptions:
            if not isinstance(d, dict):
                note("empty_descriptions")
                continue
            if narrators == "wearer" and description_subject(d) != "C":
                note("descriptions_of_others_dropped")
                continue
            text = narration.clean_narration(str(d.get("text") or ""))
            t = d.get("timestamp")
            t = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else math.nan
            if not text or not math.isfinite(t):
                note("empty_descriptions")
                continue
            items.append(Description(t, text))
        out[str(take_uid)] = sorted(items, key=lambda d: d.t)
    return out


def _majority_label(takes: list[Take]) -> int:
    """The most common label of a group's takes (ties: the smaller label), its stratum."""
    counts = collections.Counter(t.label for t in takes)
    return min(counts, key=lambda label: (-counts[label], label))


def _assign_by_group(
    uids: list[str], takes: dict[str, Take], fractions: dict[str, float], salt: str
) -> dict[str, str]:
    """Whole groups (participants, or takes without one) to splits, stratified by class."""
    members: dict[str, list[Take]] = collections.defaultdict(list)
    for u in uids:
        members[takes[u].group].append(takes[u])
    strata = {g: _majority_label(ts) for g, ts in members.items()}
    by_group = splits.assign_groups(strata, fractions, salt)
    return {u: by_group[takes[u].group] for u in uids}


def split_policy(takes: list[Take]) -> str:
    """``participant`` (every take has a participant id), ``take`` (none has) or
    ``participant_or_take`` (takes without one are their own group)."""
    known = sum(t.has_participant for t in takes)
    if known == len(takes):
        return "participant"
    return "take" if known == 0 else "participant_or_take"


def assign_splits(
    train_uids: set[str], val_uids: set[str], takes: dict[str, Take], note: Callable[[str], None]
) -> dict[str, str]:
    """``{take_uid: split}``, disjoint by participant where known, else by take (README.md).

    Official-train takes go to ``train`` / ``val`` (10% of groups, seeded, stratified by
    class); labelled official-val takes go to ``downstream_{train,val,test}`` (50/25/25 of
    groups). A group is a participant (all of their takes) or, without a participant id, one
    take. A take in both official files stays in pretraining only; an official-val take of a
    participant who has pretraining takes is not used, so no person is in both pretraining and
    the downstream task; unlabelled official-val takes are not used (all counted).
    """
    both = train_uids & val_uids
    for _ in both:
        note("takes_in_both_official_splits_kept_for_pretraining")
    pre_uids = sorted(train_uids)
    out = _assign_by_group(
        pre_uids, takes, {"val": PRETRAIN_VAL_FRACTION, "train": 1 - PRETRAIN_VAL_FRACTION}, _SALT
    )
    pre_groups = {takes[u].group for u in pre_uids}
    down = []
    for u in sorted(val_uids - both):
        if takes[u].label < 0:
            note("official_val_takes_unlabelled_unused")
        elif takes[u].group in pre_groups:
            note("official_val_takes_of_pretraining_participants_unused")
        else:
            down.append(u)
    out.update(_assign_by_group(down, takes, DOWNSTREAM_FRACTIONS, _SALT + "/downstream"))
    return out
