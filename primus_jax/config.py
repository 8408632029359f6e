"""Base configuration and up-front validation.

Every file in ``configs/`` starts from :func:`base_config` and changes only what differs.
:func:`validate` runs before anything is compiled and raises :class:`ConfigError` naming the
offending key, so a bad run fails in a second, not after a minute of tracing.
"""

from __future__ import annotations

import ml_collections

from primus_jax import augment as augment_lib
from primus_jax import cli_errors, contract, losses
from primus_jax.models.encoder import GRU_ORIENTATIONS

SCHEDULES = ("constant", "warmup_cosine")
COMPUTE_DTYPES = ("float32", "bfloat16")
DATA_SOURCES = ("synthetic", "tfds")
ON_NONFINITE = ("stop", "skip_batch")


class ConfigError(cli_errors.UserError, ValueError):
    """A configuration value is invalid; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config.{key}: {message}")


def base_config() -> ml_collections.ConfigDict:
    """Paper defaults (PRIMUS, α = β = γ = 1) on the synthetic paired source."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # drives init, data order and augmentation
    c.objective = "primus"  # or "multitask_ssl" (baseline; uses c.multitask, ignores c.loss)

    c.data = ml_collections.ConfigDict()
    c.data.source = "synthetic"  # or "tfds" (data.name below)
    c.data.batch_size = 64  # global batch; contrastive negatives are the whole global batch
    # Paper Fig. 3: keep video/text for a seeded fraction of the segments, mask the rest.
    c.data.multimodal_fraction = 1.0
    # Whole split on the mesh; shuffling/batching inside the jitted step (fast accelerators).
    c.data.device_resident = False
    # "host" (input pipeline), "resident" (= device_resident) or "auto": resident when the
    # split takes at most a quarter of one device's memory (host RAM on CPU); logged.
    c.data.input_mode = "host"
    # TFDS (source="tfds"): a built segment-format dataset, e.g. "uci_hapt/minilm".
    c.data.name = ""
    c.data.split = "train"
    c.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.manual_dir = ""  # "" = <data_dir>/manual/<dataset>
    c.data.prepare = True  # build (and embed texts) on first use when missing
    c.data.num_threads = 2  # grain read threads
    c.data.prefetch = 4
    c.data.worker_count = 0  # grain worker processes (0: in-process)
    c.data.synthetic = ml_collections.ConfigDict(
        dict(
            num_examples=8192,
            num_classes=8,
            latent_dim=16,
            imu_noise=0.3,
            emb_noise=0.1,
            video_fraction=1.0,
            text_fraction=1.0,
            windows_per_recording=1,  # consecutive segments sharing a recording id
        )
    )

    c.model = ml_collections.ConfigDict(
        dict(
            hidden=512,
            ssl_dim=512,
            mm_dim=512,  # width of the stored video/text embeddings (CLIP4Clip: 512)
            conv_channels=32,
            pool_bins=32,
            gru_over="channels",  # reference orientation; "time" = GRU over time bins
            compute_dtype="float32",  # or "bfloat16" matmul operands, float32 params/state
        )
    )

    c.augment = ml_collections.ConfigDict(
        dict(ops=("paper",), scaling_sigma=0.25, noise_sigma=0.1, permutation_cuts=4)
    )

    c.loss = ml_collections.ConfigDict(
        dict(
            alpha=1.0,  # L_SS
            beta=1.0,  # L_MM
            gamma=1.0,  # L_NN
            mm_terms=("text", "video"),
            nn_terms=("text", "video", "imu"),
            tau_init=0.1,
            # "log": tau = exp(log tau), always positive (moves ~10x slower under Adam at
            # tau = 0.1); "raw": tau itself, as the reference (clamped at tau_min).
            temperature="log",
            tau_min=0.01,
        )
    )

    # exclude: "self" (a row never takes its own segment's stale entry), "recording" (nor any
    # window of its recording: overlapping windows), "none" (the reference's behaviour).
    c.queue = ml_collections.ConfigDict(dict(size=8192, lookup="auto", exclude="self"))

    # MultitaskSSL baseline (objective="multitask_ssl"); noise, scaling and permutation
    # take their parameters from c.augment. See primus_jax/objectives/multitask_ssl.py.
    c.multitask = ml_collections.ConfigDict(
        dict(
            tasks=("all",),  # or a subset of objectives.multitask_ssl.TASKS
            feature="mmcl",  # encoder output the task heads read: emb | ssl | mmcl
            head_hidden=256,  # per-task Dense(head_hidden) + ReLU before the logit; 0: linear
            time_warp_sigma=0.2,
            time_warp_knots=4,
        )
    )

    c.optim = ml_collections.ConfigDict(
        dict(
            lr=2e-4,
            schedule="constant",
            warmup_steps=0,
            final_lr_fraction=0.0,
            weight_decay=0.0,
            grad_clip_norm=0.0,  # 0 disables clipping
            b1=0.9,
            b2=0.999,
            eps=1e-8,
        )
    )

    c.train = ml_collections.ConfigDict(
        dict(
            num_steps=10_000,
            log_every=50,
            checkpoint_every=1000,
            keep_checkpoints=3,
            # A step whose loss or gradients are not finite: "stop" the run (naming the
            # step; the last checkpoint is kept), or "skip_batch": keep parameters, optimizer
            # state and queue as before the step, advance the step (data position, RNG) and
            # log the skipped segments (primus_jax/nonfinite.py).
            on_nonfinite="stop",
            # The workdir lock of another host goes stale when not refreshed for this long
            # (primus_jax/workdir.py); on the lock's own host a dead owner is stale at once.
            lock_lease_s=600.0,
            # One CPU device: run the step inline and keep its freed temporaries on the C
            # heap, so the next step does not fault them in again (~12% of a batch-256 CPU
            # step; primus_jax/host_memory.py). Set from the command line before jax starts.
            keep_cpu_temporaries=True,
        )
    )

    # Few-shot probes of the encoder during and after pretraining, on the in-memory params
    # (primus_jax/evaluation/in_training.py). Off while methods is empty; empty or 0 values
    # take the few-shot defaults of primus_jax/evaluation/settings.py.
    c.eval = ml_collections.ConfigDict(
        dict(
            methods=(),  # e.g. ("logreg",); () = no evaluation
            every=0,  # also every N steps; 0 = only at the end
            shots=(),  # k per class; () = the few-shot default grid
            trials=0,  # draws per k; 0 = the few-shot default
            data="",  # labelled TFDS dataset or npz:<path>; "" = data.name (source="tfds")
            train_split="",  # the pool k-shot sets come from; "" = "train"
            test_split="",  # scored windows (held-out subjects); "" = "test"
            embedding="",  # "mmcl", "emb" or "ssl"; "" = the few-shot default
        )
    )

    c.mesh = ml_collections.ConfigDict(dict(data=-1))  # -1: all devices
    c.distributed = ml_collections.ConfigDict(
        dict(
            initialize=False,  # call jax.distributed.initialize() (multi-host)
            coordinator_address="",  # "" = auto-detect (TPU VM, SLURM, ...)
            num_processes=-1,
            process_id=-1,
        )
    )
    return c


def names(value, allowed, key: str, *, presets=()) -> tuple[str, ...]:
    """A list option (a tuple of names; a str is split on commas) checked against ``allowed``
    (and ``presets``, single names that stand for a list): raises ConfigError naming ``key``."""
    items = value.split(",") if isinstance(value, str) else value
    items = tuple(str(t).strip() for t in items if str(t).strip())
    bad = [t for t in items if t not in allowed and t not in presets]
    if bad:
        raise ConfigError(key, f"unknown name(s) {bad}; allowed: {[*presets, *allowed]}")
    if len(set(items)) != len(items):
        raise ConfigError(key, f"duplicate names in {value!r}")
    return items


def _leaf_type_error(value, default) -> str | None:
    """Why ``value`` cannot stand where ``base_config`` has ``default`` (None if it can).

    ``ConfigDict`` already refuses most wrong types on assignment; what it lets through is
    None anywhere, a bool for a number and a number for a bool."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be True or False, got {value!r}"
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if isinstance(default, int) and not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if value != value or value in (float("inf"), float("-inf")):
            return f"must be finite, got {value!r}"
        return None
    if isinstance(default, str):
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if isinstance(default, tuple | list):
        ok = isinstance(value, tuple | list | str)
        return None if ok else f"must be a list of names, got {value!r}"
    return None


def check_types(config, defaults=None, prefix: str = "") -> None:
    """Every key that ``base_config`` defines has a value of its type (ConfigError if not);
    keys a config file adds are left to their own checks."""
    defaults = base_config() if defaults is None else defaults
    for key, default in defaults.items():
        if key not in config:
            continue
        value, name = config[key], f"{prefix}{key}"
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise ConfigError(name, f"must be a config block, got {value!r}")
            check_types(value, default, name + ".")
            continue
        why = _leaf_type_error(value, default)
        if why:
            raise ConfigError(name, why)


def validate(config, *, num_devices: int, process_count: int = 1) -> None:
    """The checks common to every objective (``objectives.resolve`` adds the objective's)."""
    check_types(config)
    if not 0 <= config.seed < 2**32:
        raise ConfigError("seed", f"must be in [0, 2**32), got {config.seed}")
    b = config.data.batch_size
    if config.data.source not in DATA_SOURCES:
        raise ConfigError("data.source", f"{config.data.source!r} is not one of {DATA_SOURCES}")
    if config.data.source == "tfds" and not config.data.name:
        raise ConfigError("data.name", 'data.source="tfds" needs a dataset, e.g. "uci_hapt/minilm"')
    if not 0.0 <= config.data.multimodal_fraction <= 1.0:
        raise ConfigError(
            "data.multimodal_fraction", f"must be in [0, 1], got {config.data.multimodal_fraction}"
        )
    if not isinstance(b, int) or b <= 0:
        raise ConfigError("data.batch_size", f"must be a positive integer, got {b!r}")
    mesh_data = config.mesh.data
    n_data = num_devices if mesh_data == -1 else mesh_data
    if mesh_data != -1 and (mesh_data <= 0 or num_devices % mesh_data):
        raise ConfigError("mesh.data", f"{mesh_data} does not divide the {num_devices} devices")
    if process_count > 1 and mesh_data not in (-1, num_devices):
        raise ConfigError(
            "mesh.data",
            f"{mesh_data}: with {process_count} processes the data axis must span all "
            f"{num_devices} devices (-1), or some processes would hold no part of the batch",
        )
    if b % n_data:
        raise ConfigError(
            "data.batch_size",
            f"global batch {b} is not divisible by the {n_data} devices of the 'data' mesh "
            f"axis; use a multiple of {n_data}",
        )
    if b % process_count:
        raise ConfigError(
            "data.batch_size", f"global batch {b} is not divisible by {process_count} processes"
        )

    _validate_data(config.data)

    m = config.model
    if m.gru_over not in GRU_ORIENTATIONS:
        raise ConfigError("model.gru_over", f"{m.gru_over!r} is not one of {GRU_ORIENTATIONS}")
    if m.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(
            "model.compute_dtype", f"{m.compute_dtype!r} is not one of {COMPUTE_DTYPES}"
        )
    for k in ("hidden", "ssl_dim", "mm_dim", "conv_channels", "pool_bins"):
        if not 0 < m[k] <= MAX_WIDTH:
            raise ConfigError(f"model.{k}", f"must be in [1, {MAX_WIDTH}], got {m[k]}")
    if m.conv_channels % 4:
        raise ConfigError(
            "model.conv_channels", f"{m.conv_channels}: must be a multiple of 4 (GroupNorm(4))"
        )

    try:
        augment_lib.parse_ops(config.augment.ops)
    except ValueError as e:
        raise ConfigError("augment.ops", str(e)) from None
    for k in ("scaling_sigma", "noise_sigma"):
        if config.augment[k] < 0:
            raise ConfigError(f"augment.{k}", f"must be >= 0, got {config.augment[k]}")
    if not 1 <= config.augment.permutation_cuts < contract.WINDOW_T:
        raise ConfigError(
            "augment.permutation_cuts",
            f"{config.augment.permutation_cuts}: needs 1 <= cuts < {contract.WINDOW_T} samples",
        )

    loss = config.loss  # the temperatures are in every objective's parameters
    if loss.tau_init <= 0:
        raise ConfigError("loss.tau_init", f"must be > 0, got {loss.tau_init}")
    if loss.temperature not in losses.TEMPERATURE_MODES:
        raise ConfigError(
            "loss.temperature", f"{loss.temperature!r} is not one of {losses.TEMPERATURE_MODES}"
        )
    if loss.temperature == "raw" and not 0 < loss.tau_min <= loss.tau_init:
        raise ConfigError(
            "loss.tau_min", f"{loss.tau_min}: needs 0 < tau_min <= tau_init ({loss.tau_init})"
        )

    o = config.optim
    if o.lr <= 0:
        raise ConfigError("optim.lr", f"must be > 0, got {o.lr}")
    if o.schedule not in SCHEDULES:
        raise ConfigError("optim.schedule", f"{o.schedule!r} is not one of {SCHEDULES}")
    if o.schedule == "warmup_cosine" and not 0 <= o.warmup_steps < config.train.num_steps:
        raise ConfigError("optim.warmup_steps", f"{o.warmup_steps} must be in [0, train.num_steps)")
    for k in ("weight_decay", "grad_clip_norm", "warmup_steps"):
        if o[k] < 0:
            raise ConfigError(f"optim.{k}", f"must be >= 0, got {o[k]}")
    for k in ("b1", "b2"):
        if not 0 <= o[k] < 1:
            raise ConfigError(f"optim.{k}", f"must be in [0, 1), got {o[k]}")
    if o.eps <= 0:
        raise ConfigError("optim.eps", f"must be > 0, got {o.eps}")
    if not 0 <= o.final_lr_fraction <= 1:
        raise ConfigError(
            "optim.final_lr_fraction", f"must be in [0, 1], got {o.final_lr_fraction}"
        )

    if config.get("eval") is not None and config.eval.every < 0:
        raise ConfigError(
            "eval.every", f"must be >= 0 (0 = only at the end), got {config.eval.every}"
        )

    t = config.train
    if t.num_steps <= 0:
        raise ConfigError("train.num_steps", f"must be positive, got {t.num_steps}")
    for k in ("log_every", "checkpoint_every", "keep_checkpoints"):
        if t[k] <= 0:
            raise ConfigError(f"train.{k}", f"must be positive, got {t[k]}")
    if t.get("on_nonfinite", "stop") not in ON_NONFINITE:
        raise ConfigError("train.on_nonfinite", f"{t.on_nonfinite!r} is not one of {ON_NONFINITE}")
    if not isinstance(t.get("keep_cpu_temporaries", True), bool):
        raise ConfigError(
            "train.keep_cpu_temporaries", f"must be True or False, got {t.keep_cpu_temporaries!r}"
        )
    if t.get("lock_lease_s", 1.0) <= 0:
        raise ConfigError("train.lock_lease_s", f"must be > 0 seconds, got {t.lock_lease_s}")


MAX_WIDTH = 65536  # model widths beyond this are a typo, not an encoder
MAX_SYNTHETIC_BYTES = 32 * 2**30


def _validate_data(d) -> None:
    for k, low in (("num_threads", 0), ("prefetch", 0), ("worker_count", 0)):
        if d[k] < low:
            raise ConfigError(f"data.{k}", f"must be >= {low}, got {d[k]}")
    if d.source != "synthetic":
        return
    s, key = d.synthetic, "data.synthetic."
    if not d.batch_size <= s.num_examples:
        raise ConfigError(
            key + "num_examples", f"{s.num_examples}: fewer than one global batch ({d.batch_size})"
        )
    if s.num_examples * (contract.WINDOW_T * 6 + 64) * 4 > MAX_SYNTHETIC_BYTES:
        raise ConfigError(key + "num_examples", f"{s.num_examples}: more than 32 GiB of windows")
    for k in ("num_classes", "latent_dim", "windows_per_recording"):
        if not 1 <= s[k] <= min(s.num_examples, MAX_WIDTH):
            raise ConfigError(
                key + k, f"must be in [1, min(num_examples, {MAX_WIDTH})], got {s[k]}"
            )
    for k in ("imu_noise", "emb_noise"):
        if s[k] < 0:
            raise ConfigError(key + k, f"must be >= 0, got {s[k]}")
    for k in ("video_fraction", "text_fraction"):
        if not 0 <= s[k] <= 1:
            raise ConfigError(key + k, f"must be in [0, 1], got {s[k]}")


def load_config_file(path: str, *args):
    """``get_config(*args)`` of a config file given by path (for configs built on another)."""
    import importlib.util
    import os

    name = "primus_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)
