"""The ``fewshot.json`` format (schema ``primus_jax.fewshot/1``) as typed dataclasses.

:func:`parse` checks a JSON dict field by field against these types and returns a
:class:`Report`; :meth:`Report.to_dict` gives the dict back (the round trip is exact). Errors
are :class:`ReportError` and name the JSON path. Bump :data:`SCHEMA_VERSION` on any
incompatible change; ``tests/evaluation/golden/fewshot_report.json`` pins the layout.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
import types
import typing
from typing import Annotated, Any

from primus_jax import cli_errors

SCHEMA_VERSION = "primus_jax.fewshot/1"
JSON = dict[str, Any]  # a free-form JSON object


class ReportError(cli_errors.UserError, ValueError):
    """A report does not match the format; the message names the JSON path."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """Constraints of an ``Annotated`` field type: ``minimum``, ``pattern`` (strings, or a
    dict's keys), ``choices``, ``min_items`` (lists; the other rules apply to the items)."""

    minimum: float | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    min_items: int = 0


def _c(tp, **rules):
    return Annotated[tp, Rule(**rules)]


_NO_RULE = Rule()
NonNegInt = _c(int, minimum=0)
NonNegInts = _c(list[int], minimum=0)
# Fields with a default of None may be absent from the JSON (and are left out when None).


@dataclasses.dataclass
class Metric:
    """A metric over trials: mean, std(ddof=1)/sqrt(n) (None for n = 1), per-trial values."""

    mean: float
    stderr: _c(float, minimum=0) | None
    trials: _c(list[float], min_items=1)


@dataclasses.dataclass
class Init:
    """logreg_zs: started at the reported zero-shot classifier times ``scale`` (1/tau_mm)."""

    from_: _c(str, choices=("zeroshot_classifier",)) = dataclasses.field(metadata={"key": "from"})
    scale: _c(float, minimum=0)


@dataclasses.dataclass
class Fit:
    """Per-trial penalty and its source; logistic probes add L-BFGS diagnostics."""

    l2: _c(list[float], minimum=0)
    l2_source: _c(list[str], choices=("cv", "default"))
    converged: list[bool] | None = None
    iterations: NonNegInts | None = None
    max_grad_norm: _c(float, minimum=0) | None = None
    init: Init | None = None


@dataclasses.dataclass
class Entry:
    """Results of one method at one k (k = 0: zero-shot, no training windows)."""

    shots: NonNegInt
    n_train: NonNegInt  # training windows per trial
    n_test: NonNegInt  # labelled test windows scored per trial
    shots_per_class: NonNegInts  # min(k, windows available)
    truncated_classes: NonNegInts  # classes with fewer than k windows
    accuracy: Metric
    macro_f1: Metric
    balanced_accuracy: Metric
    confusion: _c(list[list[int]], minimum=0)  # [true][predicted], summed over trials
    fit: Fit | None = None
    # Methods that train the encoder: per-trial steps run, kept step, train/held-out accuracy.
    training: JSON | None = None


@dataclasses.dataclass
class Checks:
    ids_disjoint: bool | None  # None: no window ids
    n_test_rows_identical_to_train: NonNegInt


@dataclasses.dataclass
class Method:
    """One method on one dataset; ``run_id`` points into the report's ``runs``."""

    run_id: str
    probe: _c(str, choices=("logistic", "ridge", "zeroshot"))
    config: JSON  # the method's settings
    embedding_dim: NonNegInt  # width of what its classifier reads
    checks: Checks
    results: _c(dict[str, Entry], pattern=r"^(0|[1-9][0-9]*)$")  # str(k) -> entry


@dataclasses.dataclass
class Dropped:
    train: NonNegInt
    test: NonNegInt


@dataclasses.dataclass
class Dataset:
    num_classes: NonNegInt
    class_names: list[str] | None
    n_train_pool: NonNegInt  # labelled train windows k-shot sets come from
    n_test: NonNegInt
    train_class_counts: NonNegInts
    test_class_counts: NonNegInts
    unlabelled_dropped: Dropped
    label_fingerprint: _c(str, pattern=r"^[0-9a-f]{64}$")  # sha256 of labels (and ids)
    methods: dict[str, Method]


@dataclasses.dataclass
class Run:
    """How one run was made: encoder, seeds, sampler, environment, free-form notes."""

    created_utc: str
    encoder_checkpoint: str | None
    embedding_key: str | None  # e.g. mmcl, ssl, emb
    seed: NonNegInt
    trials: NonNegInt
    shots: NonNegInts
    sampler: str
    hardware: JSON
    software: JSON
    notes: JSON
    timing_s: JSON  # dataset -> method -> k -> seconds


@dataclasses.dataclass
class Report:
    schema: _c(str, choices=(SCHEMA_VERSION,))
    created_utc: str
    runs: dict[str, Run]
    datasets: dict[str, Dataset]

    def __post_init__(self):
        for name, ds in self.datasets.items():
            for method, m in ds.methods.items():
                if m.run_id not in self.runs:
                    raise ReportError(
                        f"$.datasets.{name}.methods.{method}.run_id: {m.run_id!r} is not in runs"
                    )

    def to_dict(self) -> dict:
        return _dump(self)


def _type_name(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _check_scalar(value, tp, path):
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"unsupported field type {tp}")
    if not ok:
        want = {bool: "boolean", int: "integer", float: "number", str: "string"}[tp]
        raise ReportError(f"{path}: expected {want}, got {_type_name(value)} {value!r}")
    return value


def _constrain(value, rule: Rule, path):
    if isinstance(value, int | float) and not isinstance(value, bool):
        if rule.minimum is not None and value < rule.minimum:
            raise ReportError(f"{path}: {value} < minimum {rule.minimum}")
    if isinstance(value, str):
        if rule.pattern and not re.search(rule.pattern, value):
            raise ReportError(f"{path}: {value!r} does not match {rule.pattern}")
        if rule.choices and value not in rule.choices:
            raise ReportError(f"{path}: {value!r} not in {list(rule.choices)}")


def _load(value, tp, rule: Rule, path):
    """``value`` checked against type ``tp`` and its :class:`Rule`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _load(value, args[0], args[1], path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (tp,) = [a for a in args if a is not type(None)]
        return _load(value, tp, rule, path)
    if dataclasses.is_dataclass(tp):
        return _load_dataclass(value, tp, path)
    if origin is list:
        if not isinstance(value, list):
            raise ReportError(f"{path}: expected array, got {_type_name(value)}")
        if len(value) < rule.min_items:
            raise ReportError(f"{path}: fewer than {rule.min_items} items")
        return [_load(v, args[0], rule, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ReportError(f"{path}: expected object, got {_type_name(value)}")
        if args[1] is Any:
            return copy.deepcopy(value)
        out = {}
        for k, v in value.items():
            if rule.pattern and not re.search(rule.pattern, k):
                raise ReportError(f"{path}: key {k!r} does not match {rule.pattern}")
            out[k] = _load(v, args[1], _NO_RULE, f"{path}.{k}")
        return out
    value = _check_scalar(value, tp, path)
    _constrain(value, rule, path)
    return value


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls, globalns=globals(), include_extras=True)


def _load_dataclass(value, cls, path):
    if not isinstance(value, dict):
        raise ReportError(f"{path}: expected object, got {_type_name(value)}")
    hints, kwargs, known = _hints(cls), {}, set()
    for f in dataclasses.fields(cls):
        key = f.metadata.get("key") or f.name
        known.add(key)
        if key not in value:
            if f.default is None:  # an optional field
                continue
            raise ReportError(f"{path}: missing required key {key!r}")
        kwargs[f.name] = _load(value[key], hints[f.name], _NO_RULE, f"{path}.{key}")
    extra = sorted(set(value) - known)
    if extra:
        raise ReportError(f"{path}: unexpected key {extra[0]!r}")
    return cls(**kwargs)


def _dump(value):
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is None and f.default is None:
                continue  # an optional field, absent
            out[f.metadata.get("key") or f.name] = _dump(v)
        return out
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def parse(report: object) -> Report:
    """The typed report; raises :class:`ReportError` naming the first bad path."""
    return _load_dataclass(report, Report, "$")


def validate(report: object) -> None:
    """Raises :class:`ReportError` unless ``report`` is a valid ``fewshot.json`` dict."""
    parse(report)
