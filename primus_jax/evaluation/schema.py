"""The versioned JSON schema of ``fewshot.json`` and a dependency-free validator.

The schema is standard JSON Schema (draft 2020-12 keywords), so external tools can check
reports too; :func:`validate` implements the subset used here (``type``, ``enum``, ``const``,
``properties``, ``required``, ``additionalProperties``, ``propertyNames``, ``pattern``,
``items``, ``minItems``, ``minimum``) so the project needs no ``jsonschema`` package.
Bump :data:`SCHEMA_VERSION` on any incompatible change.
"""

from __future__ import annotations

import math
import re

SCHEMA_VERSION = "primus_jax.fewshot/1"

_INT = {"type": "integer", "minimum": 0}
_INT_LIST = {"type": "array", "items": _INT}
_NUM_LIST = {"type": "array", "items": {"type": "number"}, "minItems": 1}

METRIC_SCHEMA = {
    "description": "A metric over trials: mean, std(ddof=1)/sqrt(n) (null for n = 1), values.",
    "type": "object",
    "required": ["mean", "stderr", "trials"],
    "additionalProperties": False,
    "properties": {
        "mean": {"type": "number"},
        "stderr": {"type": ["number", "null"], "minimum": 0},
        "trials": _NUM_LIST,
    },
}

ENTRY_SCHEMA = {
    "description": "Results of one method at one k (k = 0: zero-shot, no training windows).",
    "type": "object",
    "required": [
        "shots",
        "n_train",
        "n_test",
        "shots_per_class",
        "truncated_classes",
        "accuracy",
        "macro_f1",
        "balanced_accuracy",
        "confusion",
    ],
    "additionalProperties": False,
    "properties": {
        "shots": _INT,
        "n_train": {**_INT, "description": "training windows per trial (sum of shots_per_class)"},
        "n_test": {**_INT, "description": "labelled test windows scored per trial"},
        "shots_per_class": {**_INT_LIST, "description": "min(k, windows available) per class"},
        "truncated_classes": {**_INT_LIST, "description": "classes with fewer than k windows"},
        "accuracy": METRIC_SCHEMA,
        "macro_f1": METRIC_SCHEMA,
        "balanced_accuracy": METRIC_SCHEMA,
        "confusion": {
            "description": "C x C counts [true][predicted], summed over trials",
            "type": "array",
            "items": _INT_LIST,
        },
        "fit": {
            "description": "per-trial penalty (and its source) and, for logistic probes, "
            "L-BFGS diagnostics; absent for zero-shot",
            "type": "object",
            "required": ["l2", "l2_source"],
            "additionalProperties": False,
            "properties": {
                "l2": {"type": "array", "items": {"type": "number", "minimum": 0}},
                "l2_source": {"type": "array", "items": {"enum": ["cv", "default"]}},
                "converged": {"type": "array", "items": {"type": "boolean"}},
                "iterations": _INT_LIST,
                "max_grad_norm": {"type": "number", "minimum": 0},
                "init": {
                    "description": "logreg_zs: started at the reported zero-shot classifier's "
                    "class vectors times scale (the encoder's 1/tau_mm)",
                    "type": "object",
                    "required": ["from", "scale"],
                    "additionalProperties": False,
                    "properties": {
                        "from": {"enum": ["zeroshot_classifier"]},
                        "scale": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
    },
}

METHOD_SCHEMA = {
    "type": "object",
    "required": ["run_id", "probe", "config", "embedding_dim", "checks", "results"],
    "additionalProperties": False,
    "properties": {
        "run_id": {"type": "string", "description": "key into the top-level runs"},
        "probe": {"enum": ["logistic", "ridge", "zeroshot"]},
        "config": {"type": "object", "description": "the probe's settings, as a dict"},
        "embedding_dim": _INT,
        "checks": {
            "type": "object",
            "required": ["ids_disjoint", "n_test_rows_identical_to_train"],
            "properties": {
                "ids_disjoint": {"type": ["boolean", "null"], "description": "null: no ids"},
                "n_test_rows_identical_to_train": _INT,
            },
        },
        "results": {
            "type": "object",
            "propertyNames": {"pattern": "^(0|[1-9][0-9]*)$"},
            "additionalProperties": ENTRY_SCHEMA,
        },
    },
}

DATASET_SCHEMA = {
    "type": "object",
    "required": [
        "num_classes",
        "class_names",
        "n_train_pool",
        "n_test",
        "train_class_counts",
        "test_class_counts",
        "unlabelled_dropped",
        "label_fingerprint",
        "methods",
    ],
    "additionalProperties": False,
    "properties": {
        "num_classes": _INT,
        "class_names": {"type": ["array", "null"], "items": {"type": "string"}},
        "n_train_pool": {**_INT, "description": "labelled train windows k-shot sets come from"},
        "n_test": _INT,
        "train_class_counts": _INT_LIST,
        "test_class_counts": _INT_LIST,
        "unlabelled_dropped": {
            "type": "object",
            "required": ["train", "test"],
            "properties": {"train": _INT, "test": _INT},
        },
        "label_fingerprint": {
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "sha256 of train/test labels (and ids): equal => same splits",
        },
        "methods": {"type": "object", "additionalProperties": METHOD_SCHEMA},
    },
}

RUN_SCHEMA = {
    "type": "object",
    "required": [
        "created_utc",
        "encoder_checkpoint",
        "embedding_key",
        "seed",
        "trials",
        "shots",
        "sampler",
        "hardware",
        "software",
        "notes",
        "timing_s",
    ],
    "additionalProperties": False,
    "properties": {
        "created_utc": {"type": "string"},
        "encoder_checkpoint": {"type": ["string", "null"]},
        "embedding_key": {"type": ["string", "null"], "description": "e.g. mmcl, ssl, backbone"},
        "seed": _INT,
        "trials": _INT,
        "shots": _INT_LIST,
        "sampler": {"type": "string"},
        "hardware": {"type": "object"},
        "software": {"type": "object"},
        "notes": {"type": "object"},
        "timing_s": {"type": "object", "description": "dataset -> method -> k -> seconds"},
    },
}

FEWSHOT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_VERSION,
    "title": "primus_jax few-shot linear-probe report",
    "type": "object",
    "required": ["schema", "created_utc", "runs", "datasets"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "created_utc": {"type": "string"},
        "runs": {"type": "object", "additionalProperties": RUN_SCHEMA},
        "datasets": {"type": "object", "additionalProperties": DATASET_SCHEMA},
    },
}


class SchemaError(ValueError):
    """A report does not match the schema; the message names the JSON path."""


def _type_ok(value: object, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):  # bool is an int subclass in Python, never a JSON number
        return False
    if name == "integer":
        return isinstance(value, int)
    if name == "number":
        return isinstance(value, int | float) and math.isfinite(value)
    raise ValueError(f"unsupported schema type {name!r}")


def validate(instance: object, schema: dict = FEWSHOT_SCHEMA, path: str = "$") -> None:
    """Raises :class:`SchemaError` if ``instance`` violates ``schema`` (subset, see module doc)."""
    if "const" in schema and instance != schema["const"]:
        raise SchemaError(f"{path}: expected {schema['const']!r}, got {instance!r}")
    if "enum" in schema and instance not in schema["enum"]:
        raise SchemaError(f"{path}: {instance!r} not in {schema['enum']}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(instance, t) for t in types):
            raise SchemaError(f"{path}: expected {'/'.join(types)}, got {type(instance).__name__}")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            raise SchemaError(f"{path}: {instance} < minimum {schema['minimum']}")
    if isinstance(instance, str) and "pattern" in schema:
        if not re.search(schema["pattern"], instance):
            raise SchemaError(f"{path}: {instance!r} does not match {schema['pattern']}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            raise SchemaError(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(instance):
                validate(item, schema["items"], f"{path}[{i}]")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                raise SchemaError(f"{path}: missing required key {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if "propertyNames" in schema:
                validate(key, {"type": "string", **schema["propertyNames"]}, f"{path}.<key {key}>")
            if key in props:
                validate(value, props[key], f"{path}.{key}")
            elif extra is False:
                raise SchemaError(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                validate(value, extra, f"{path}.{key}")
