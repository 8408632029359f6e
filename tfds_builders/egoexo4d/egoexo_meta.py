"""EgoExo4D takes index, atomic descriptions, take-level classes and split assignment."""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Callable

from etils import epath

from tfds_builders import narration, splits

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


def load_takes(path: epath.Path) -> dict[str, Take]:
    """``{take_uid: Take}`` from ``takes.json`` (a list of take records).

    ``participant_uid`` (an integer, e.g. 657) is the take's camera wearer, per the Ego-Exo4D
    metadata documentation (https://docs.ego-exo4d-data.org/data/metadata, "Takes"; the same
    ids index ``participants.json``).
    """
    with path.open("rb") as f:
        raw = json.load(f)
    records = raw.get("takes", []) if isinstance(raw, dict) else raw
    out = {}
    for r in records:
        if "take_uid" not in r or "take_name" not in r:
            continue
        participant = r.get("participant_uid")
        duration = r.get("duration_sec")
        out[r["take_uid"]] = Take(
            uid=r["take_uid"],
            name=r["take_name"],
            subject=f"participant_{participant}" if participant is not None else r["take_uid"],
            take_dir=r.get("root_dir") or f"takes/{r['take_name']}",
            duration=float(duration) if duration is not None else None,
            label=take_class(r["take_name"]),
            has_participant=participant is not None,
        )
    return out


def load_descriptions(
    path: epath.Path, on_empty: Callable[[], None]
) -> dict[str, list[Description]]:
    """First annotator's cleaned descriptions per take, sorted by time (stable).

    Only the first annotator's list is used, as in the reference (``narr[0]``): the
    annotators describe the same actions, so adding the others would mostly duplicate windows.
    """
    with path.open("rb") as f:
        raw = json.load(f)
    out: dict[str, list[Description]] = {}
    for take_uid, per_annotator in (raw.get("annotations") or {}).items():
        if not per_annotator:
            continue
        items = []
        for d in per_annotator[0].get("descriptions") or []:
            text = narration.clean_narration(d.get("text") or "")
            t = d.get("timestamp")
            if not text or t is None:
                on_empty()
                continue
            items.append(Description(float(t), text))
        out[take_uid] = sorted(items, key=lambda d: d.t)
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
