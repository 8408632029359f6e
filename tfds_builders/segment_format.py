"""The segment format shared by every builder (``docs/data.md`` "The segment format").

Builders never write their own ``FeaturesDict``: they call ``features()`` and turn each window
into an example with ``make_example``, which validates it, so a builder bug fails the build
instead of writing wrong data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from primus_jax import contract
from primus_jax.contract import NUM_CHANNELS, RATE_HZ, WINDOW_S
from primus_jax.contract import WINDOW_T as WINDOW_LEN

UNLABELLED = -1
# Embeddings are stored L2-normalised; allow float32 round-off and a little slack.
_NORM_TOL = 1e-3


def features() -> tfds.features.FeaturesDict:
    """The ``FeaturesDict`` of one 5 s segment."""
    return tfds.features.FeaturesDict(
        {
            "imu": tfds.features.Tensor(shape=(WINDOW_LEN, NUM_CHANNELS), dtype=np.float32),
            "id": tfds.features.Text(),
            "subject": tfds.features.Text(),
            "recording": tfds.features.Text(),
            "start_s": tfds.features.Scalar(dtype=np.float32),
            "label": tfds.features.Scalar(dtype=np.int64),
            "label_name": tfds.features.Text(),
            "text": tfds.features.Text(),
            "has_text": tfds.features.Scalar(dtype=np.bool_),
            "text_emb": tfds.features.Tensor(shape=(None,), dtype=np.float32),
            "has_video": tfds.features.Scalar(dtype=np.bool_),
            "video_emb": tfds.features.Tensor(shape=(None,), dtype=np.float32),
        }
    )


def metadata(
    label_names: Sequence[str],
    text_emb_dim: int = 0,
    video_emb_dim: int = 0,
    *,
    class_prompts: Sequence[Sequence[str]] = (),
    text_from_labels: bool = False,
    **extra,
) -> tfds.core.MetadataDict:
    """``info.metadata``: class names, embedding widths (0 = none), prompts and extras.

    ``class_prompts`` (one list of sentences per class, in label order) are what zero-shot
    evaluation embeds; ``text_from_labels`` says the paired ``text`` was generated from the
    labels (templated sentences), so multimodal pretraining on it saw the labels.
    """
    if class_prompts and len(class_prompts) != len(label_names):
        raise ValueError(f"{len(class_prompts)} prompt lists for {len(label_names)} classes")
    for names in class_prompts:
        if not names or not all(isinstance(p, str) and p.strip() for p in names):
            raise ValueError(f"every class needs non-empty prompt sentences, got {names!r}")
    return tfds.core.MetadataDict(
        label_names=list(label_names),
        class_prompts=[list(p) for p in class_prompts],
        text_from_labels=bool(text_from_labels),
        text_emb_dim=int(text_emb_dim),
        video_emb_dim=int(video_emb_dim),
        rate_hz=RATE_HZ,
        window_s=WINDOW_S,
        channels=list(contract.CHANNEL_NAMES),
        units=dict(contract.UNITS),
        **extra,
    )


@dataclasses.dataclass(eq=False)
class SegmentConfig(tfds.core.BuilderConfig):
    """A builder config: which embedding stores (if any) are merged into the segments.

    Attributes:
        text_store: Embedding-store directory for ``text_emb`` (``docs/data.md`` "Embedding store").
            A relative path is resolved against the manual directory
            (``<manual_dir>/<text_store>``); an absolute path is used as is. ``None``: none.
        video_store: Likewise for ``video_emb``.
        text_emb_dim: Expected width of the text store (checked at build time), 0 = none.
        video_emb_dim: Expected width of the video store, 0 = none.
        label_names: This config's classes, when they differ from the builder's
            ``LABEL_NAMES`` (e.g. ``uci_hapt/transitions``); ``()`` = the builder's.
        class_prompts: Zero-shot prompts per class for ``label_names``; ``()`` = the
            builder's ``CLASS_PROMPTS``.
        text_from_labels: Overrides the builder's ``TEXT_FROM_LABELS``; ``None`` = keep it.
        text_encoder: Text encoder that zero-shot evaluation should embed the prompts with
            when the config stores no text embeddings (``info.metadata["text_encoder"]``
            otherwise comes from the store); ``None`` = none.
        narrators: Which narrations the video datasets keep: ``"wearer"`` (default: only
            those of the camera wearer, who wears the IMU) or ``"all"``
            (``narration.NARRATOR_POLICIES``).
    """

    text_store: str | None = None
    video_store: str | None = None
    text_emb_dim: int = 0
    video_emb_dim: int = 0
    label_names: tuple[str, ...] = ()
    class_prompts: tuple[tuple[str, ...], ...] = ()
    text_from_labels: bool | None = None
    text_encoder: str | None = None
    narrators: str = "wearer"


def clip4clip_config() -> SegmentConfig:
    """The ``clip4clip`` config of the video datasets: 512-d CLIP4Clip text and video
    embeddings merged from ``<manual_dir>/embeddings/clip4clip_{text,video}``."""
    return SegmentConfig(
        name="clip4clip",
        description="As raw, plus 512-d CLIP4Clip text and video embeddings from the "
        "stores <manual_dir>/embeddings/clip4clip_{text,video}.",
        text_store="embeddings/clip4clip_text",
        video_store="embeddings/clip4clip_video",
        text_emb_dim=512,
        video_emb_dim=512,
    )


def minilm_config() -> SegmentConfig:
    """The ``minilm`` config of the text datasets: 384-d all-MiniLM-L6-v2 text embeddings
    merged from ``<manual_dir>/embeddings/minilm`` (``python -m primus_jax.embed``)."""
    return SegmentConfig(
        name="minilm",
        description="As raw, plus 384-d all-MiniLM-L6-v2 text embeddings read from the "
        "store <manual_dir>/embeddings/minilm.",
        text_store="embeddings/minilm",
        text_emb_dim=384,
    )


def segment_id(recording: str, start_s: float) -> str:
    """The stable key ``<recording>/<start_ms>``."""
    return f"{recording}/{round(start_s * 1000)}"


def _embedding(emb: np.ndarray | None, what: str, key: str) -> np.ndarray:
    if emb is None:
        return np.zeros((0,), np.float32)
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 1 or emb.size == 0 or not np.isfinite(emb).all():
        raise ValueError(f"{key}: {what} must be a non-empty finite vector, got {emb.shape}")
    norm = float(np.linalg.norm(emb))
    if abs(norm - 1.0) > _NORM_TOL:
        raise ValueError(f"{key}: {what} must be L2-normalised, has norm {norm:.4f}")
    return emb


def make_example(
    *,
    imu: np.ndarray,
    recording: str,
    subject: str,
    start_s: float,
    label_names: Sequence[str],
    label: int = UNLABELLED,
    text: str = "",
    text_emb: np.ndarray | None = None,
    video_emb: np.ndarray | None = None,
) -> tuple[str, dict]:
    """Validates one window and returns ``(key, example)`` for ``_generate_examples``.

    Args:
        imu: ``(250, 6)`` real-valued window in SI units, canonical channel order.
        recording: Take / video / experiment id; must not contain ``/`` (the id separator).
        subject: Person id (or the recording id when unknown).
        start_s: Window start in seconds from the recording's start.
        label_names: The builder's class names.
        label: Class index, or ``-1`` for unlabelled.
        text: Paired text, ``""`` when none.
        text_emb: L2-normalised text embedding, or ``None``.
        video_emb: L2-normalised video embedding, or ``None``.

    Returns:
        ``(id, example)`` where ``id = <recording>/<start_ms>``.

    Raises:
        ValueError: On a wrong shape or dtype, non-finite values, a bad label or id, or an
            embedding that is not unit-norm.
    """
    if not recording or "/" in recording:
        raise ValueError(f"recording id {recording!r} must be non-empty and contain no '/'")
    key = segment_id(recording, start_s)
    imu = np.asarray(imu)
    if imu.shape != (WINDOW_LEN, NUM_CHANNELS):
        raise ValueError(f"{key}: imu must be {(WINDOW_LEN, NUM_CHANNELS)}, got {imu.shape}")
    if not (np.issubdtype(imu.dtype, np.floating) or np.issubdtype(imu.dtype, np.integer)):
        raise ValueError(f"{key}: imu must be real-valued, got {imu.dtype}")
    with np.errstate(over="ignore"):  # an overflow becomes inf and is rejected below
        imu = imu.astype(np.float32)
    if not np.isfinite(imu).all():
        raise ValueError(f"{key}: imu has non-finite values")
    if not (start_s >= 0 and np.isfinite(start_s)):
        raise ValueError(f"{key}: start_s must be finite and >= 0, got {start_s}")
    label = int(label)
    if not UNLABELLED <= label < len(label_names):
        raise ValueError(f"{key}: label {label} outside [-1, {len(label_names)})")
    text_emb = _embedding(text_emb, "text_emb", key)
    video_emb = _embedding(video_emb, "video_emb", key)
    return key, {
        "imu": imu,
        "id": key,
        "subject": str(subject),
        "recording": recording,
        "start_s": np.float32(start_s),
        "label": label,
        "label_name": label_names[label] if label >= 0 else "",
        "text": text,
        "has_text": text_emb.size > 0,
        "text_emb": text_emb,
        "has_video": video_emb.size > 0,
        "video_emb": video_emb,
    }
