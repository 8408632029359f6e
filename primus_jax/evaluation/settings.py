"""The evaluation settings block: defaults defined once, validated once.

``configs/fewshot.py`` is this block plus ``mode = "fewshot"``; a pretraining config can carry
the same block (e.g. as ``config.evaluation``) to evaluate what it trains. Keys are explained
in ``docs/evaluation.md``. List options are tuples; ``--config.shots=1,2,5`` and
``--config.methods=logreg,ridge`` parse into them on the command line.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from primus_jax.config import ConfigError

DEFAULT_SHOTS = (1, 2, 5, 10, 20, 50, 100, 500)
EMBEDDINGS = ("mmcl", "emb", "ssl")


def settings() -> ml_collections.ConfigDict:
    """The defaults of a few-shot evaluation (the paper's protocol on UCI HAPT)."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # sampler seed (and the random-init encoder's)
    c.checkpoint = ""  # "" = random init (the random-init linear-probe baseline)
    c.data = "uci_hapt/minilm"  # a TFDS segment dataset or npz:<path>
    c.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.prepare = True  # build the TFDS dataset on first use
    c.train_split = "train"
    c.test_split = "test"
    c.embedding = "mmcl"  # the paper keeps the multimodal head downstream; or "emb", "ssl"
    c.shots = DEFAULT_SHOTS
    c.trials = 5
    c.methods = ("logreg", "ridge", "logreg_zs")  # + "zeroshot" automatically
    c.zeroshot = True
    c.retrieval = True
    c.text_encoder = ""  # "" = the dataset's (metadata text_encoder); "none" disables
    c.text_encoder_dir = ""  # local weights for clip_text
    c.prompt_cache = ""  # "" = <data_dir>/prompt_embeddings; "none" = embed the prompts live
    c.batch_size = 512
    c.run_name = ""
    c.standard_training_shots = ()  # () = same as shots
    c.standard_training_steps = 0  # 0 = each method's own budget (docs/evaluation.md)
    c.embedding_map = 600  # test points in the report's t-SNE map; 0 = no map
    # Used only when checkpoint == "": the random-init encoder's shape.
    c.model = ml_collections.ConfigDict(dict(mm_dim=384))
    return c


@dataclasses.dataclass(frozen=True)
class Plan:
    """The validated list options of a settings block."""

    shots: tuple[int, ...]
    methods: tuple[str, ...]
    standard_training_shots: tuple[int, ...]
    standard_training_steps: int | None


def _items(value) -> list[str]:
    """Elements of a tuple option; a string element may hold several, comma-separated (the
    command line gives ``("logreg,ridge",)`` for ``--config.methods=logreg,ridge``)."""
    if isinstance(value, str):
        value = (value,)
    out = []
    for v in value:
        out += [p.strip() for p in v.split(",")] if isinstance(v, str) else [v]
    return [v for v in out if v != ""]


def _shots(config, key: str) -> tuple[int, ...]:
    value = config[key]
    try:
        items = _items(value)
        if any(isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()) for v in items):
            raise ValueError
        shots = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{value!r} is not a tuple of ints") from None
    if shots and min(shots) < 1:
        raise ConfigError(key, f"shots per class must be >= 1, got {value!r}")
    return shots


def validate(config, known_methods) -> Plan:
    """Checks a settings block before any work; raises ConfigError naming the key."""
    if not config.data:
        raise ConfigError("data", "give a TFDS dataset name or npz:<path>")
    if config.embedding not in EMBEDDINGS:
        raise ConfigError("embedding", f"{config.embedding!r} is not one of {EMBEDDINGS}")
    shots = _shots(config, "shots")
    if not shots:
        raise ConfigError("shots", "give at least one k")
    st_shots = _shots(config, "standard_training_shots") or shots
    if config.trials < 1:
        raise ConfigError("trials", f"must be >= 1, got {config.trials}")
    if config.batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {config.batch_size}")
    if config.get("embedding_map", 0) < 0:
        raise ConfigError("embedding_map", "must be >= 0 (0 = no map)")
    if config.standard_training_steps < 0:
        raise ConfigError("standard_training_steps", "must be >= 0 (0 = the default budget)")
    methods = tuple(str(m) for m in _items(config.methods))
    unknown = [m for m in methods if m not in known_methods]
    if not methods or unknown:
        raise ConfigError(
            "methods", f"unknown {unknown or list(methods)}; choose from {sorted(known_methods)}"
        )
    return Plan(shots, methods, st_shots, config.standard_training_steps or None)
