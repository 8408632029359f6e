"""Frame sources, the reference's frame sampling, CLIP image preprocessing and decode tasks.

No torch here: this module runs in the decode worker processes. The model side lives in
``encoders.ClipVisionEncoder``.

Reference behaviour kept: frames ``[int(start_s·fps), int(end_s·fps))``
of the source, then ``num_frames`` (50 = 10 fps × 5 s) of them at
``torch.linspace(0, n - 1, num_frames).long()`` positions (reproduced bit for bit, including its
float32 rounding), each frame RGB → Resize(224, bicubic) → CenterCrop(224) as torchvision does on
PIL images. Normalisation happens on the model's device.

Reference defects fixed:
* float noise: ``2.3 * 30 == 68.99999999999999`` → we round to 1e-6 before flooring;
* the frame count is always ``num_frames``, also when the window is clamped to the end of the
  video (the reference passed a non-integer count to ``linspace``);
* an empty window (start past the end, or no frame inside it), an unreadable video or a bad fps
  skip the window and record why, instead of returning a zero tensor;
* a video shorter than its header claims is re-planned against the frames that really decode.

Efficiency: windows are grouped per video and cut into tasks that cover at most
``task_span_s`` seconds; a task decodes its span once (seeking to its first frame, as the
reference does for every window), and each sampled frame is preprocessed once however many
overlapping windows use it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_NUM_FRAMES = 50
DEFAULT_TASK_SPAN_S = 60.0
# Decoding forward is cheaper than a seek (keyframe + decode) for short gaps.
_SEEK_MIN_GAP = 64


class VideoSourceError(RuntimeError):
    """A frame source cannot be opened or has unusable metadata."""


@dataclasses.dataclass(frozen=True)
class VideoWindow:
    """One clip to embed.

    Attributes:
      id: segment id (store key).
      source: a video file, a directory of frame images, or an ``.npy`` (F, H, W, 3) uint8 array.
      start_s: window start in seconds from the source's first frame; ``None`` = whole source.
      end_s: window end (exclusive); ``None`` = whole source.
      fps: frame rate of an image directory or ``.npy`` source (a video file's own rate is used
        for video files); needed only when ``start_s``/``end_s`` are given.
    """

    id: str
    source: str
    start_s: float | None = None
    end_s: float | None = None
    fps: float | None = None


def torch_linspace_indices(n: int, num: int) -> np.ndarray:
    """``torch.linspace(0, n - 1, num).long()`` exactly, without torch.

    torch computes linspace in float32 as ``start + i·step`` for the first half and
    ``end - (num - 1 - i)·step`` for the second; the float32 rounding makes e.g. n=8, num=50
    pick frame 3 where exact arithmetic gives 4, so we reproduce it rather than "fix" it.

    Args:
      n: number of frames available (>= 1).
      num: number of indices wanted (>= 1).

    Returns:
      (num,) int64 indices in [0, n).
    """
    if num == 1:
        return np.zeros(1, np.int64)
    end = np.float32(n - 1)
    step = end / np.float32(num - 1)
    i = np.arange(num)
    first = i.astype(np.float32) * step
    second = end - (num - 1 - i).astype(np.float32) * step
    return np.where(i < num // 2, first, second).astype(np.float32).astype(np.int64)


def _floor_frame(t: float, fps: float) -> int:
    # round() first so that float noise (2.3 * 30 = 68.99999999999999) does not lose a frame.
    return math.floor(round(t * fps, 6))


def window_frame_indices(
    start_s: float | None,
    end_s: float | None,
    fps: float | None,
    num_available: int,
    num_frames: int = DEFAULT_NUM_FRAMES,
) -> np.ndarray | None:
    """Source frame indices the reference would average for one window.

    Args:
      start_s: window start (s), or None for the whole source.
      end_s: window end (s, exclusive), or None for the whole source.
      fps: source frame rate (needed when start/end are given).
      num_available: frames in the source.
      num_frames: frames to sample (may repeat frames of a short window, like the reference).

    Returns:
      (num_frames,) int64 indices, or None when the window holds no frame.
    """
    if start_s is None and end_s is None:
        first, stop = 0, num_available
    else:
        if fps is None or not math.isfinite(fps) or fps <= 0:
            raise VideoSourceError(f"a window needs a positive fps, got {fps!r}")
        first = 0 if start_s is None else max(0, _floor_frame(start_s, fps))
        stop = num_available if end_s is None else min(num_available, _floor_frame(end_s, fps))
    if stop <= first:
        return None
    return first + torch_linspace_indices(stop - first, num_frames)


def resize_center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """torchvision ``Resize(size, bicubic)`` + ``CenterCrop(size)`` on a PIL image.

    Args:
      frame: (H, W, 3) uint8 RGB.
      size: output side (the CLIP vision tower's ``image_size``).

    Returns:
      (size, size, 3) uint8 RGB.
    """
    from PIL import Image

    h, w = frame.shape[:2]
    # torchvision: the short side becomes `size`, the long side int(size * long / short).
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    image = Image.fromarray(np.ascontiguousarray(frame))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    out = np.asarray(image)
    # torchvision rounds the crop offset (half to even); HF's processor floors it.
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    return np.ascontiguousarray(out[top : top + size, left : left + size])


# -- frame sources -----------------------------------------------------------------------------


class FrameSource:
    """A random-access-ish sequence of RGB frames.

    Attributes:
      fps: frames per second (None when unknown and not given).
      num_frames: frames the source claims to hold.
    """

    fps: float | None
    num_frames: int

    def read(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yields ``(index, (H, W, 3) uint8 RGB)`` for sorted unique ``indices``.

        Stops early (without raising) at the first frame that cannot be read, so callers learn
        where the source really ends.
        """
        raise NotImplementedError

    def close(self) -> None:
        pass


class VideoFileSource(FrameSource):
    """A video file read with OpenCV (``opencv-python-headless``), as the reference does."""

    def __init__(self, path: str, fps: float | None = None):
        try:
            import cv2
        except ImportError as e:
            raise ImportError(
                "reading video files needs OpenCV: pip install opencv-python-headless==4.14.0.94 "
                "(or pre-extract frames to a directory or .npy)"
            ) from e
        self._cv2 = cv2
        self.path = path
        if not os.path.isfile(path):
            raise VideoSourceError(f"video file not found: {path}")
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise VideoSourceError(f"OpenCV cannot open {path}")
        self.fps = fps if fps is not None else float(self._cap.get(cv2.CAP_PROP_FPS))
        self.num_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise VideoSourceError(f"{path}: unusable frame rate {self.fps!r}")
        self._pos = 0

    def read(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        cv2, cap = self._cv2, self._cap
        for idx in indices:
            if idx < self._pos or idx - self._pos >= _SEEK_MIN_GAP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
                self._pos = idx
            while self._pos < idx:
                if not cap.grab():
                    return
                self._pos += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            self._pos += 1
            yield idx, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()


def _natural_key(name: str) -> list[int | str]:
    # frame_2.jpg before frame_10.jpg, whether or not the numbers are zero-padded.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


class ImageDirSource(FrameSource):
    """A directory of frame images (JPEG/PNG/...), in natural file-name order."""

    def __init__(self, path: str, fps: float | None = None):
        self.path = path
        self.fps = fps
        names = [n for n in os.listdir(path) if n.lower().endswith(IMAGE_SUFFIXES)]
        self._files = [os.path.join(path, n) for n in sorted(names, key=_natural_key)]
        self.num_frames = len(self._files)

    def read(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        from PIL import Image

        for idx in indices:
            if idx >= self.num_frames:
                return
            try:
                with Image.open(self._files[idx]) as im:
                    frame = np.asarray(im.convert("RGB"))
            except (OSError, ValueError, SyntaxError):  # what PIL raises for a corrupt file
                return
            yield idx, frame


class NpySource(FrameSource):
    """An ``.npy`` array of frames, (F, H, W, 3) uint8 RGB, memory-mapped."""

    def __init__(self, path: str, fps: float | None = None):
        self.path = path
        self.fps = fps
        self._arr = np.load(path, mmap_mode="r")
        if self._arr.ndim != 4 or self._arr.shape[-1] != 3 or self._arr.dtype != np.uint8:
            got = f"{self._arr.dtype} {self._arr.shape}"
            raise VideoSourceError(f"{path}: expected (F, H, W, 3) uint8 frames, got {got}")
        self.num_frames = self._arr.shape[0]

    def read(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for idx in indices:
            if idx >= self.num_frames:
                return
            yield idx, np.asarray(self._arr[idx])


def open_source(path: str, fps: float | None = None) -> FrameSource:
    """Opens a video file, an image directory or an ``.npy`` frame array.

    Raises:
      VideoSourceError: missing or unreadable source.
    """
    if os.path.isdir(path):
        return ImageDirSource(path, fps)
    if path.endswith(".npy"):
        if not os.path.isfile(path):
            raise VideoSourceError(f"frame array not found: {path}")
        return NpySource(path, fps)
    return VideoFileSource(path, fps)


# -- decode tasks (run in worker processes) ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DecodeTask:
    """Windows of one source whose frames are decoded together."""

    source: str
    fps: float | None
    windows: tuple[VideoWindow, ...]
    num_frames: int
    image_size: int


@dataclasses.dataclass
class DecodeResult:
    """Preprocessed frames of one task and which of them each window averages.

    Attributes:
      frames: (K, S, S, 3) uint8, unique frames after resize + center crop.
      windows: ``(id, positions)`` pairs; ``positions`` (num_frames,) index ``frames`` (with
        repeats when the window has fewer frames than ``num_frames``).
      skipped: ``(id, reason)`` for windows that have no embedding.
      truncated: ids of windows cut short by the end of the source (still embedded).
    """

    frames: np.ndarray
    windows: list[tuple[str, np.ndarray]]
    skipped: list[tuple[str, str]]
    truncated: list[str]


def plan_tasks(
    windows: Sequence[VideoWindow],
    num_frames: int,
    image_size: int,
    task_span_s: float = DEFAULT_TASK_SPAN_S,
) -> list[DecodeTask]:
    """Groups windows by source and cuts each source's windows into time spans.

    Order is deterministic: sources in order of first appearance, windows by start time.
    """
    by_source: dict[tuple[str, float | None], list[VideoWindow]] = {}
    for w in windows:
        by_source.setdefault((w.source, w.fps), []).append(w)
    tasks = []
    for (source, fps), group in by_source.items():
        group = sorted(group, key=lambda w: (w.start_s or 0.0, w.id))
        chunk: list[VideoWindow] = []
        for w in group:
            if chunk and (w.end_s or 0.0) - (chunk[0].start_s or 0.0) > task_span_s:
                tasks.append(DecodeTask(source, fps, tuple(chunk), num_frames, image_size))
                chunk = []
            chunk.append(w)
        tasks.append(DecodeTask(source, fps, tuple(chunk), num_frames, image_size))
    return tasks


def _plan(
    task: DecodeTask, num_available: int, fps: float | None, result: DecodeResult, empty: str
) -> dict[str, np.ndarray]:
    plans = {}
    for w in task.windows:
        idx = window_frame_indices(w.start_s, w.end_s, fps, num_available, task.num_frames)
        if idx is None:
            result.skipped.append((w.id, empty))
        else:
            plans[w.id] = idx
    return plans


def run_decode_task(task: DecodeTask) -> DecodeResult:
    """Decodes and preprocesses the frames of one task (top-level so worker processes can run it).

    Never raises for a bad source: its windows are reported in ``skipped`` instead.
    """
    result = DecodeResult(np.zeros((0, task.image_size, task.image_size, 3), np.uint8), [], [], [])
    try:
        source = open_source(task.source, task.fps)
    except (VideoSourceError, OSError, ValueError) as e:
        reason = f"unreadable_source: {e}"
        result.skipped.extend((w.id, reason) for w in task.windows)
        return result
    try:
        try:
            plans = _plan(task, source.num_frames, source.fps, result, "empty_window")
        except VideoSourceError as e:
            result.skipped.extend((w.id, f"bad_fps: {e}") for w in task.windows)
            return result
        frames: dict[int, np.ndarray] = {}
        wanted = sorted({int(i) for idx in plans.values() for i in idx})
        for i, frame in source.read(wanted):
            frames[i] = resize_center_crop(frame, task.image_size)
        if len(frames) < len(wanted):
            # The container over-reported its length (or a frame is corrupt). The real end lies
            # after the last frame read and at or before the first that failed: probe the gap
            # (a few frames) on a fresh handle, then plan again against the frames that decode.
            first_bad = min(i for i in wanted if i not in frames)
            end = max(frames, default=-1) + 1
            source.close()
            source = open_source(task.source, task.fps)
            for i, _ in source.read(range(end, first_bad)):
                end = i + 1
            result.skipped.clear()
            reason = f"empty_window: only {end} of the {source.num_frames} frames decode"
            plans = _plan(task, end, source.fps, result, reason)
            missing = sorted({int(i) for idx in plans.values() for i in idx} - frames.keys())
            if missing:
                source.close()
                source = open_source(task.source, task.fps)
                for i, frame in source.read(missing):
                    frames[i] = resize_center_crop(frame, task.image_size)
            for wid in [wid for wid, idx in plans.items() if not all(i in frames for i in idx)]:
                del plans[wid]
                result.skipped.append((wid, "decode_error"))
    finally:
        source.close()

    order = sorted({int(i) for idx in plans.values() for i in idx})
    position = {frame_index: k for k, frame_index in enumerate(order)}
    if order:
        result.frames = np.stack([frames[i] for i in order])
    for w in task.windows:
        idx = plans.get(w.id)
        if idx is None:
            continue
        result.windows.append((w.id, np.array([position[int(i)] for i in idx], np.int64)))
        if w.end_s is not None and source.fps and _floor_frame(w.end_s, source.fps) > idx[-1] + 1:
            result.truncated.append(w.id)
    return result


def resolve_path(path: str, root: str | os.PathLike | None) -> str:
    """Resolves a manifest path relative to ``root`` (absolute paths and ``~`` pass through)."""
    p = Path(path).expanduser()
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    return str(p)
