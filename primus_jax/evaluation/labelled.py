"""Labelled IMU datasets for evaluation: a built TFDS segment dataset or a user's ``.npz``.

``load_labelled(spec, ...)`` returns train and test splits of windows ``(N, 250, 6)`` float32
at 50 Hz in SI units with integer labels, window ids, subjects and (when the dataset has them)
texts and stored text embeddings, plus class names and per-class prompts.

``spec`` is a TFDS name (``uci_hapt/minilm``, ``realworld/raw``, optionally prefixed ``tfds:``)
or ``npz:<path>``. The ``.npz`` contract (errors name the key and the expected shape):

* ``X``: (N, 250, 6) float32 windows, 5 s at 50 Hz, channels acc x/y/z (m/s^2, gravity
  included) then gyro x/y/z (rad/s); use ``primus_jax.load_encoder(...).embed_stream`` or
  ``primus_jax.data.signal`` to resample / convert other data first;
* ``y``: (N,) labels, int (>= 0; -1 = unlabelled) or str (class names, sorted);
* either ``split``: (N,) str, each ``"train"`` or ``"test"``, or ``subject``: (N,) subject ids,
  then a seeded subject-wise 75/25 train/test split;
* optional ``ids`` (N,) unique window ids (default: the row index), ``class_names`` (C,) for
  int labels, ``text`` (N,) paired sentences.

Zero-shot prompts come from the built dataset's ``info.metadata["class_prompts"]`` (one list of
sentences per class, written by the builder with ``text_from_labels``); for a dataset built
before builders wrote them, from the builder's table for that config
(``SegmentBuilder.config_classes``); only for data with neither (``.npz`` files, foreign TFDS
datasets) from generic sentences around the class names, with a warning, because zero-shot
accuracy from those says little.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from absl import logging

from primus_jax import cli_errors, contract

WINDOW = contract.SHAPE


@dataclasses.dataclass
class LabelledSplit:
    imu: np.ndarray  # (N, 250, 6) float32
    y: np.ndarray  # (N,) int64, -1 = unlabelled
    ids: np.ndarray  # (N,) str
    subject: np.ndarray  # (N,) str
    text: list[str] | None = None
    text_emb: np.ndarray | None = None  # (N, D) stored embeddings where has_text
    has_text: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass
class LabelledData:
    name: str
    train: LabelledSplit
    test: LabelledSplit
    class_names: list[str]
    text_encoder: str | None = None  # encoder of the stored text embeddings, if any
    prompts: list[list[str]] | None = None  # per-class sentences for zero-shot
    # The paired text was generated from the labels (templated sentences, e.g. UCI HAPT).
    text_from_labels: bool = False
    # Where the prompts came from: "metadata", "builder" (old build) or "generic".
    prompt_source: str = "generic"
    # The local TFDS data_dir it was read from (None for npz): the default prompt cache's home.
    data_dir: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class BadDatasetFile(cli_errors.FileError):
    """A user's ``.npz`` does not follow the contract; the message names file and key."""


def _fail(path, key, message):
    raise BadDatasetFile(path, f"key {key!r}: {message}")


def default_prompts(class_names) -> list[list[str]]:
    """Generic prompts built from the class names: the last resort (see the module doc)."""
    out = []
    for name in class_names:
        n = str(name).replace("_", " ")
        out.append(
            [
                f"a person is {n}",
                f"someone is {n}",
                f"a person {n}",
                f"the activity is {n}",
                f"a recording of a person {n}",
            ]
        )
    return out


def load_npz(path: str, *, seed: int = 0) -> LabelledData:
    """Reads a user's ``.npz`` per the module contract, with errors naming key and shape."""
    from primus_jax.evaluation import sampling

    files = cli_errors.read_npz(path)
    if "X" not in files:
        _fail(path, "X", f"missing; expected (N, {WINDOW[0]}, {WINDOW[1]}) float32 windows")
    x = files["X"]
    if x.ndim != 3 or x.shape[1:] != WINDOW:
        _fail(
            path,
            "X",
            f"expected shape (N, {WINDOW[0]}, {WINDOW[1]}) (5 s at 50 Hz; acc xyz m/s^2, "
            f"gyro xyz rad/s, channels last), got {x.shape}",
        )
    if not np.issubdtype(x.dtype, np.floating):
        _fail(path, "X", f"expected float32, got {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        _fail(path, "X", f"{int((~np.isfinite(x)).any(axis=(1, 2)).sum())} windows hold NaN/inf")
    n = len(x)
    if "y" not in files:
        _fail(path, "y", f"missing; expected ({n},) int or str labels")
    y_raw = files["y"]
    if y_raw.shape != (n,):
        _fail(path, "y", f"expected shape ({n},) to match X, got {y_raw.shape}")
    if y_raw.dtype.kind in "US":
        class_names = sorted(set(y_raw.tolist()))
        y = np.array([class_names.index(v) for v in y_raw.tolist()], np.int64)
    elif y_raw.dtype.kind in "iu":
        y = y_raw.astype(np.int64)
        if (y < -1).any():
            _fail(path, "y", "integer labels must be >= 0 (or -1 for unlabelled)")
        c = int(y.max()) + 1 if (y >= 0).any() else 0
        names = files.get("class_names")
        if names is not None and names.ndim != 1:
            _fail(path, "class_names", f"expected (C,) names, got shape {names.shape}")
        if names is not None and len(names) < c:
            _fail(path, "class_names", f"has {len(names)} names for {c} classes")
        class_names = [str(v) for v in names] if names is not None else [str(i) for i in range(c)]
    else:
        _fail(path, "y", f"expected int or str labels, got dtype {y_raw.dtype}")
    ids = files.get("ids", np.arange(n)).astype(str)
    if ids.shape != (n,) or len(set(ids.tolist())) != n:
        _fail(path, "ids", f"expected ({n},) unique ids")
    subject = files.get("subject")
    if subject is not None and subject.shape != (n,):
        _fail(path, "subject", f"expected shape ({n},), got {subject.shape}")
    if "split" in files:
        split = files["split"].astype(str)
        if split.shape != (n,) or not set(split.tolist()) <= {"train", "test"}:
            _fail(path, "split", f"expected ({n},) values 'train'/'test'")
        parts = {s: np.flatnonzero(split == s) for s in ("train", "test")}
    elif subject is not None:
        try:
            parts = sampling.split_by_subject(subject.astype(str), seed=seed)
        except ValueError as e:
            _fail(path, "subject", f"{e}; give a 'split' key or more subjects")
    else:
        _fail(path, "split", "missing: give 'split' ('train'/'test' per window) or 'subject'")
    for s in ("train", "test"):
        if len(parts[s]) == 0:
            _fail(path, "split", f"the {s} split is empty")
    text = files.get("text")
    if text is not None and text.shape != (n,):
        _fail(path, "text", f"expected ({n},) sentences to match X, got shape {text.shape}")
    subj = subject.astype(str) if subject is not None else np.full(n, "", dtype=str)

    def take(idx):
        return LabelledSplit(
            imu=x[idx],
            y=y[idx],
            ids=ids[idx],
            subject=subj[idx],
            text=None if text is None else [str(t) for t in text[idx]],
        )

    return LabelledData(
        name=os.path.splitext(os.path.basename(path))[0],
        train=take(parts["train"]),
        test=take(parts["test"]),
        class_names=class_names,
        prompts=_generic_prompts(os.path.basename(path), class_names),
    )


def _generic_prompts(name: str, class_names) -> list[list[str]]:
    logging.warning(
        "eval data: %s has no hand-written class prompts (no info.metadata['class_prompts'], "
        "no builder table); zero-shot, if it runs, uses generic sentences built from the class "
        "names (e.g. %r), which say little",
        name,
        default_prompts(class_names[:1])[0][0] if len(class_names) else "",
    )
    return default_prompts(class_names)


def _builder_classes(name: str, module) -> dict | None:
    """The builder's own table for this config (datasets built before the metadata had it)."""
    builder_cls = getattr(module, "Builder", None) if module is not None else None
    if builder_cls is None or not hasattr(builder_cls, "config_classes"):
        return None
    config = name.split("/")[1].split(":")[0] if "/" in name else None
    try:
        return builder_cls.config_classes(config)
    except ValueError:  # a config the builder does not define
        return None


def class_prompts(name: str, metadata: dict, module) -> tuple[list[list[str]], bool, str]:
    """``(prompts, text_from_labels, source)`` for a built TFDS dataset (module doc)."""
    class_names = list(metadata.get("label_names", []))
    prompts = metadata.get("class_prompts")
    if prompts:
        if len(prompts) != len(class_names):
            raise ValueError(
                f"{name}: info.metadata has {len(prompts)} class_prompts lists for "
                f"{len(class_names)} label_names"
            )
        return [list(p) for p in prompts], bool(metadata.get("text_from_labels")), "metadata"
    table = _builder_classes(name, module)
    if table and table["class_prompts"] and table["label_names"] == class_names:
        logging.info("eval data: %s: class prompts from the builder's table (old build)", name)
        return table["class_prompts"], table["text_from_labels"], "builder"
    from_labels = bool(metadata.get("text_from_labels", False))
    return _generic_prompts(name, class_names), from_labels, "generic"


def _tfds_split(source, text_dim: int) -> LabelledSplit:
    from primus_jax.data.tfds_input import read_all

    def fields(i, ex):
        del i
        dec = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)
        out = {
            "imu": np.asarray(ex["imu"], np.float32),
            "y": np.int64(ex["label"]),
            "ids": dec(ex["id"]),
            "subject": dec(ex["subject"]),
            "text": dec(ex["text"]),
            "has_text": bool(ex["has_text"]),
        }
        if text_dim:
            e = np.asarray(ex["text_emb"], np.float32)
            out["text_emb"] = e if e.size else np.zeros(text_dim, np.float32)
        return out

    cols = read_all(source, fields)
    return LabelledSplit(
        imu=cols["imu"],
        y=cols["y"],
        ids=cols["ids"],
        subject=cols["subject"],
        text=cols["text"].tolist(),
        text_emb=cols.get("text_emb"),
        has_text=cols["has_text"],
    )


def load_tfds(
    name: str, *, data_dir: str, train_split: str, test_split: str, prepare: bool
) -> LabelledData:
    from primus_jax.data import prepare as prep

    if prepare:
        prep.prepare_dataset(name, data_dir)
    splits = {}
    for role, split in (("train", train_split), ("test", test_split)):
        source, info = prep.open_source(name, split, data_dir)
        text_dim = int((info.metadata or {}).get("text_emb_dim", 0))
        splits[role] = _tfds_split(source, text_dim)
    md = dict(info.metadata or {})
    class_names = list(md.get("label_names", []))
    module = prep.import_builder_module(name)
    prompts, text_from_labels, prompt_source = class_prompts(name, md, module)
    for role, s in splits.items():
        if (s.y < 0).all():
            raise ValueError(f"{name}[{role}] has no labelled windows")
    logging.info(
        "eval data: %s train=%d test=%d windows, %d classes, prompts from %s",
        name,
        len(splits["train"]),
        len(splits["test"]),
        len(class_names),
        prompt_source,
    )
    return LabelledData(
        name=name,
        train=splits["train"],
        test=splits["test"],
        class_names=class_names,
        text_encoder=md.get("text_encoder"),
        prompts=prompts,
        text_from_labels=text_from_labels,
        prompt_source=prompt_source,
        data_dir=data_dir,
    )


def load_labelled(
    spec: str,
    *,
    data_dir: str = "",
    train_split: str = "train",
    test_split: str = "test",
    seed: int = 0,
    prepare: bool = True,
) -> LabelledData:
    """``npz:<path>`` or a TFDS segment dataset name (see the module docstring)."""
    from primus_jax.data.prepare import default_data_dir, local_data_dir

    if not spec:
        raise ValueError("config.data is empty: give a TFDS name or npz:<path>")
    if spec.startswith("npz:"):
        return load_npz(spec[4:], seed=seed)
    name = spec[5:] if spec.startswith("tfds:") else spec
    return load_tfds(
        name,
        data_dir=local_data_dir(data_dir or default_data_dir(), "data_dir", name),
        train_split=train_split,
        test_split=test_split,
        prepare=prepare,
    )
