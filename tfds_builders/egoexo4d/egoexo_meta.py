"""EgoExo4D takes index, atomic descriptions, take-level classes and split assignment."""

from __future__ import annotations

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
    subject: str  # participant uid when takes.json has one, else the take uid
    take_dir: str  # relative to the root, e.g. "takes/<take_name>"
    duration: float | None
    label: int


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
    """``{take_uid: Take}`` from ``takes.json`` (a list of take records)."""
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


def assign_splits(
    train_uids: set[str], val_uids: set[str], takes: dict[str, Take], note: Callable[[str], None]
) -> dict[str, str]:
    """``{take_uid: split}``; see README.md ("Splits").

    Official-train takes go to ``train`` / ``val`` (10% seeded, stratified by class); labelled
    official-val takes go to ``downstream_{train,val,test}`` (50/25/25, seeded, stratified).
    A take in both official files stays in pretraining only; unlabelled official-val takes are
    not used.
    """
    both = train_uids & val_uids
    for _ in both:
        note("takes_in_both_official_splits_kept_for_pretraining")
    pre = {u: takes[u].label for u in sorted(train_uids)}
    out = splits.assign_groups(
        pre, {"val": PRETRAIN_VAL_FRACTION, "train": 1 - PRETRAIN_VAL_FRACTION}, _SALT
    )
    down = {}
    for u in sorted(val_uids - both):
        if takes[u].label < 0:
            note("official_val_takes_unlabelled_unused")
        else:
            down[u] = takes[u].label
    out.update(splits.assign_groups(down, DOWNSTREAM_FRACTIONS, _SALT + "/downstream"))
    return out
