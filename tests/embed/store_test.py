"""Embedding store and frame sampling: numpy only (no torch needed)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from primus_jax.embed import video as video_lib
from primus_jax.embed.store import EmbeddingStore, StoreError
from primus_jax.embed.writer import EmbeddingStoreWriter


def _unit(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _writer(path, **kw):
    kw = {"encoder": "minilm", "modality": "text", "dim": 8, **kw}
    return EmbeddingStoreWriter(path, **kw)


def test_round_trip_across_shards(tmp_path):
    ids = [f"rec{i}/{i * 1000}" for i in range(7)]
    emb = _unit(7, 8)
    with _writer(tmp_path / "s", shard_size=3, config={"model_sha256": "abc"}) as w:
        assert w.add(ids[:5], emb[:5]) == 5
        assert w.add(ids[5:], emb[5:]) == 2
    manifest = json.loads((tmp_path / "s" / "store.json").read_text())
    assert manifest["format"] == "primus_jax.embedding_store/1"
    assert manifest["shards"] == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    assert (manifest["encoder"], manifest["modality"], manifest["dim"]) == ("minilm", "text", 8)
    assert manifest["normalized"] is True
    with np.load(tmp_path / "s" / "shard-00000.npz") as z:  # the documented shard layout
        assert z["ids"].dtype.kind == "U" and z["emb"].dtype == np.float32
        assert z["emb"].shape == (3, 8)

    s = EmbeddingStore(tmp_path / "s")
    assert (len(s), s.dim, s.encoder, s.modality) == (7, 8, "minilm", "text")
    assert s.config == {"model_sha256": "abc"}
    assert s.ids == ids
    assert ids[3] in s and "nope" not in s
    np.testing.assert_array_equal(s[ids[6]], emb[6])
    got, found = s.lookup([ids[2], "nope", ids[0]])
    np.testing.assert_array_equal(found, [True, False, True])
    np.testing.assert_array_equal(got[[0, 2]], emb[[2, 0]])
    np.testing.assert_array_equal(got[1], 0.0)
    with pytest.raises(KeyError):
        s["nope"]


def test_resume_skips_stored_ids(tmp_path):
    emb = _unit(4, 8)
    with _writer(tmp_path) as w:
        w.add(["a", "b"], emb[:2])
    with _writer(tmp_path) as w:
        assert w.missing(["a", "c", "b", "d"]) == ["c", "d"]
        # Already stored ("a") and repeated within the call ("c" twice) are skipped.
        assert w.add(["a", "c", "c", "d"], emb[[0, 2, 2, 3]]) == 2
    s = EmbeddingStore(tmp_path)
    assert sorted(s.ids) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(s["a"], emb[0])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"dim": 16}, "dim=8"),
        ({"encoder": "clip_text"}, "encoder='minilm'"),
        ({"modality": "video"}, "modality='text'"),
        ({"config": {"num_frames": 8}}, "num_frames: store has 50, this run 8"),
    ],
)
def test_mismatch_is_a_clear_error(tmp_path, kw, match):
    with _writer(tmp_path, config={"num_frames": 50}) as w:
        w.add(["a"], _unit(1, 8))
    with pytest.raises(StoreError, match=match):
        _writer(tmp_path, **kw)
    # The failed open released the lock: a matching writer still works.
    with _writer(tmp_path, config={"num_frames": 50}) as w:
        assert "a" in w


@pytest.mark.parametrize(
    "emb, match",
    [
        (np.zeros((1, 8), np.float32), "norm 0"),
        (np.full((1, 8), np.nan, np.float32), "non-finite"),
        (_unit(1, 4), "shape"),
    ],
)
def test_refuses_bad_embeddings(tmp_path, emb, match):
    with _writer(tmp_path) as w, pytest.raises(StoreError, match=match):
        w.add(["a"], emb)
    assert len(EmbeddingStore(tmp_path)) == 0


def test_second_writer_is_refused(tmp_path):
    with _writer(tmp_path), pytest.raises(StoreError, match="another process"):
        _writer(tmp_path)


def test_crash_while_writing_a_shard_leaves_a_valid_store(tmp_path, monkeypatch):
    emb = _unit(4, 8)
    with _writer(tmp_path) as w:
        w.add(["a", "b"], emb[:2])

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")  # a torn write...
        raise OSError("disk vanished")  # ...then the process "dies"

    w = _writer(tmp_path)
    w.add(["c", "d"], emb[2:])
    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(OSError, match="disk vanished"):
        w.flush()
    w._release_lock()
    monkeypatch.undo()

    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert EmbeddingStore(tmp_path).ids == ["a", "b"]
    with _writer(tmp_path) as w:  # the next run redoes the lost rows
        assert w.missing(["a", "b", "c", "d"]) == ["c", "d"]
        w.add(["c", "d"], emb[2:])
    assert EmbeddingStore(tmp_path).ids == ["a", "b", "c", "d"]


def test_crash_before_the_manifest_lists_a_shard(tmp_path, monkeypatch):
    emb = _unit(4, 8)
    with _writer(tmp_path) as w:
        w.add(["a", "b"], emb[:2])
    w = _writer(tmp_path)
    w.add(["c", "d"], emb[2:])
    monkeypatch.setattr(w, "_write_manifest", lambda: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError, match="killed"):
        w.flush()
    w._release_lock()
    assert (tmp_path / "shard-00001.npz").exists()  # written, but never listed

    assert EmbeddingStore(tmp_path).ids == ["a", "b"]  # readers ignore it
    with _writer(tmp_path) as w:  # the next writer removes it and carries on
        assert w.missing(["c", "d"]) == ["c", "d"]
        w.add(["d", "c"], emb[[3, 2]])
    s = EmbeddingStore(tmp_path)
    assert s.ids == ["a", "b", "d", "c"]
    np.testing.assert_array_equal(s["c"], emb[2])


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no embedding store"):
        EmbeddingStore(tmp_path / "missing")
    (tmp_path / "store.json").write_text('{"format": "something/else"}')
    with pytest.raises(StoreError, match="format"):
        EmbeddingStore(tmp_path)


def test_store_reader_needs_no_torch():
    code = (
        "import sys; from primus_jax.embed.store import EmbeddingStore; import primus_jax.embed; "
        "bad = {'torch', 'transformers', 'tensorflow_datasets', 'cv2'} & set(sys.modules); "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- frame sampling -------------------------------------------------------------------------


def test_window_frame_indices_follow_the_reference():
    # 30 fps, [10 s, 15 s) → frames 300..449, 50 at linspace positions.
    idx = video_lib.window_frame_indices(10.0, 15.0, 30.0, 10_000, 50)
    assert len(idx) == 50 and idx[0] == 300 and idx[-1] == 449
    # Float noise: 2.3 * 30 = 68.99999999999999 must still start at frame 69.
    assert video_lib.window_frame_indices(2.3, 7.3, 30.0, 10_000, 50)[0] == 69
    # Clamped at the end of the video: still 50 indices (repeating frames), all readable.
    idx = video_lib.window_frame_indices(8.0, 13.0, 30.0, 300, 50)
    assert len(idx) == 50 and idx[0] == 240 and idx.max() == 299
    # Empty windows give None, not zeros.
    assert video_lib.window_frame_indices(10.0, 15.0, 30.0, 300, 50) is None
    assert video_lib.window_frame_indices(5.0, 5.0, 30.0, 300, 50) is None
    # Whole-source clips need no fps.
    np.testing.assert_array_equal(video_lib.window_frame_indices(None, None, None, 5, 3), [0, 2, 4])
    with pytest.raises(video_lib.VideoSourceError, match="fps"):
        video_lib.window_frame_indices(0.0, 5.0, 0.0, 300, 50)


@pytest.mark.parametrize("width, left", [(300, 38), (301, 38), (303, 40)])
def test_center_crop_offset_rounds_like_torchvision(width, left):
    # Short side already 224, so there is no resampling and the crop offset is visible exactly:
    # torchvision uses round((w - 224) / 2) (half to even: 38.5 → 38, 39.5 → 40).
    frame = np.random.default_rng(0).integers(0, 256, (224, width, 3), dtype=np.uint8)
    out = video_lib.resize_center_crop(frame, 224)
    np.testing.assert_array_equal(out, frame[:, left : left + 224])


def test_plan_tasks_groups_by_source_and_span():
    w = [
        video_lib.VideoWindow("b1", "b.mp4", 0.0, 5.0),
        video_lib.VideoWindow("a2", "a.mp4", 100.0, 105.0),
        video_lib.VideoWindow("a1", "a.mp4", 0.0, 5.0),
        video_lib.VideoWindow("a3", "a.mp4", 40.0, 45.0),
    ]
    tasks = video_lib.plan_tasks(w, num_frames=50, image_size=224, task_span_s=60.0)
    assert [[x.id for x in t.windows] for t in tasks] == [["b1"], ["a1", "a3"], ["a2"]]


class _ShortSource(video_lib.FrameSource):
    """A source whose header claims 200 frames but only 120 decode; frame i is filled with i."""

    def __init__(self):
        self.fps, self.num_frames = 30.0, 200
        self.frames = np.arange(120, dtype=np.uint8)[:, None, None, None] * np.ones(
            (1, 16, 16, 3), np.uint8
        )

    def read(self, indices):
        for i in indices:
            if i >= len(self.frames):
                return
            yield i, self.frames[i]


def test_decode_task_replans_when_the_video_is_shorter_than_claimed(monkeypatch):
    monkeypatch.setattr(video_lib, "open_source", lambda path, fps: _ShortSource())
    windows = (
        video_lib.VideoWindow("full", "v", 0.0, 1.0),  # frames 0..29
        video_lib.VideoWindow("cut", "v", 2.0, 5.0),  # 60..149, really 60..119
        video_lib.VideoWindow("gone", "v", 5.0, 6.0),  # 150..179: nothing decodes
    )
    result = video_lib.run_decode_task(video_lib.DecodeTask("v", None, windows, 10, 8))
    assert result.skipped == [("gone", "empty_window: only 120 of the 200 frames decode")]
    assert result.truncated == ["cut"]
    got = {wid: result.frames[pos, 0, 0, 0].tolist() for wid, pos in result.windows}
    assert got["full"] == video_lib.torch_linspace_indices(30, 10).tolist()
    assert got["cut"] == (60 + video_lib.torch_linspace_indices(60, 10)).tolist()


def test_unreadable_source_skips_its_windows(tmp_path):
    task = video_lib.DecodeTask(
        str(tmp_path / "missing.npy"), 30.0, (video_lib.VideoWindow("a", "x", 0.0, 1.0),), 10, 8
    )
    result = video_lib.run_decode_task(task)
    assert result.windows == [] and result.skipped[0][0] == "a"
    assert result.skipped[0][1].startswith("unreadable_source: frame array not found")


def test_video_file_seeks_land_on_the_right_frame(tmp_path):
    """Sparse reads (which seek) return the same frames as a sequential decode (inter-coded)."""
    cv2 = pytest.importorskip("cv2")
    path = str(tmp_path / "v.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    yy, xx = np.mgrid[0:48, 0:64]
    for t in range(200):  # smooth motion, so most frames are predicted, not keyframes
        writer.write(
            np.stack([(xx + 3 * t) % 256, (yy + t) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        )
    writer.release()
    sequential = dict(video_lib.VideoFileSource(path).read(range(200)))
    assert len(sequential) == 200
    sparse = dict(video_lib.VideoFileSource(path).read([3, 90, 91, 170, 199]))
    for i, frame in sparse.items():
        np.testing.assert_array_equal(frame, sequential[i], err_msg=f"frame {i}")


def test_video_manifest(tmp_path):
    from primus_jax.embed.inputs import video_windows_from_manifest

    lines = [
        {"id": "t/0", "video": "takes/t.mp4", "start_s": 0, "end_s": 5},
        {"id": "t/2000", "video": "/abs/t.mp4", "start_s": 2},  # end_s = start_s + window_s
        {"id": "c/0", "frames": "clips/c.npy"},  # a whole pre-cut clip
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    w = video_windows_from_manifest(manifest, window_s=5.0)
    assert w[0] == video_lib.VideoWindow("t/0", str(tmp_path / "takes/t.mp4"), 0.0, 5.0)
    assert (w[1].source, w[1].end_s) == ("/abs/t.mp4", 7.0)
    assert w[2] == video_lib.VideoWindow("c/0", str(tmp_path / "clips/c.npy"))
    assert video_windows_from_manifest(manifest, media_root="/m", window_s=5)[0].source == (
        "/m/takes/t.mp4"
    )
    manifest.write_text(json.dumps({"id": "x", "frames": "d", "start_s": 1, "end_s": 2}))
    with pytest.raises(ValueError, match="without an 'fps'"):
        video_windows_from_manifest(manifest)
