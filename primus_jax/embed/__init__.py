"""Offline embedding tool: frozen text/video encoders → embedding stores (docs/data.md).

CLI: ``python -m primus_jax.embed --help``. Importing this package needs only numpy; torch and
transformers are imported when an encoder is loaded.
"""

from primus_jax.embed.encoders import ENCODERS, ModelDirError, load_text_encoder
from primus_jax.embed.inputs import (
    text_records_from_manifest,
    text_records_from_tfds,
    video_windows_from_manifest,
)
from primus_jax.embed.pipeline import EmbedStats, embed_texts, write_text_store, write_video_store
from primus_jax.embed.store import EmbeddingStore, StoreError
from primus_jax.embed.video import VideoWindow
from primus_jax.embed.writer import EmbeddingStoreWriter

__all__ = [
    "ENCODERS",
    "EmbedStats",
    "EmbeddingStore",
    "EmbeddingStoreWriter",
    "ModelDirError",
    "StoreError",
    "VideoWindow",
    "embed_texts",
    "load_text_encoder",
    "text_records_from_manifest",
    "text_records_from_tfds",
    "video_windows_from_manifest",
    "write_text_store",
    "write_video_store",
]
