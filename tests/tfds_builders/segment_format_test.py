"""Tests for the shared segment format: features, example validation, metadata."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import segment_format

NAMES = ("a", "b")


def _imu():
    return np.ones((250, 6), np.float32)


def _unit(d, seed=0):
    v = np.random.default_rng(seed).normal(size=d)
    return v / np.linalg.norm(v)


def test_features_match_doc():
    f = segment_format.features()
    assert set(f.keys()) == {
        "imu",
        "id",
        "subject",
        "recording",
        "start_s",
        "label",
        "label_name",
        "text",
        "has_text",
        "text_emb",
        "has_video",
        "video_emb",
    }
    assert f["imu"].shape == (250, 6) and f["imu"].np_dtype == np.float32
    assert f["text_emb"].shape == (None,) and f["video_emb"].shape == (None,)
    assert f["label"].np_dtype == np.int64 and f["start_s"].np_dtype == np.float32
    assert isinstance(f["text"], tfds.features.Text)


def test_make_example_defaults_and_key():
    key, ex = segment_format.make_example(
        imu=_imu().astype(np.float64),
        recording="take1",
        subject="p1",
        start_s=12.3456,
        label_names=NAMES,
    )
    assert key == ex["id"] == "take1/12346"
    assert ex["imu"].dtype == np.float32
    assert ex["label"] == -1 and ex["label_name"] == "" and ex["text"] == ""
    assert ex["text_emb"].shape == (0,) and not ex["has_text"]
    assert ex["video_emb"].shape == (0,) and not ex["has_video"]
    segment_format.features().encode_example(ex)  # TFDS accepts it


def test_make_example_with_label_and_embeddings():
    _, ex = segment_format.make_example(
        imu=_imu(),
        recording="r",
        subject="s",
        start_s=0.0,
        label_names=NAMES,
        label=1,
        text="hello",
        text_emb=_unit(4),
        video_emb=_unit(8, 1),
    )
    assert ex["label_name"] == "b" and ex["has_text"] and ex["has_video"]
    assert ex["text_emb"].dtype == np.float32 and ex["video_emb"].shape == (8,)
    segment_format.features().encode_example(ex)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(imu=np.ones((250, 3))), r"imu must be \(250, 6\)"),
        (dict(imu=np.ones((249, 6))), r"imu must be \(250, 6\)"),
        (dict(imu=np.full((250, 6), np.nan)), "non-finite"),
        (dict(imu=np.full((250, 6), "x")), "real-valued"),
        (dict(imu=np.full((250, 6), 1e39)), "non-finite"),  # overflows float32
        (dict(label=2), "outside"),
        (dict(label=-2), "outside"),
        (dict(recording="a/b"), "contain no '/'"),
        (dict(start_s=-1.0), "start_s"),
        (dict(text_emb=np.ones(4)), "L2-normalised"),
        (dict(video_emb=np.array([np.nan, 1.0])), "finite vector"),
    ],
)
def test_make_example_rejects(kwargs, match):
    base = dict(imu=_imu(), recording="r", subject="s", start_s=0.0, label_names=NAMES)
    with pytest.raises(ValueError, match=match):
        segment_format.make_example(**{**base, **kwargs})


def test_metadata():
    md = segment_format.metadata(NAMES, text_emb_dim=384, source="x")
    assert md["label_names"] == ["a", "b"]
    assert md["text_emb_dim"] == 384 and md["video_emb_dim"] == 0
    assert md["rate_hz"] == 50 and md["source"] == "x"


def test_config_defaults():
    cfg = segment_format.SegmentConfig(name="raw")
    assert cfg.text_store is None and cfg.video_store is None
    assert cfg.text_emb_dim == 0 and cfg.video_emb_dim == 0
