"""Reads the official UCI HAPT raw layout (``RawData/``) into ``hapt_pickle.Experiment``s.

Layout (UCI "Smartphone-Based Recognition of Human Activities and Postural Transitions")::

    RawData/acc_exp01_user01.txt    N rows "ax ay az" (g, gravity included), 50 Hz
    RawData/gyro_exp01_user01.txt   N rows "gx gy gz" (rad/s)
    RawData/labels.txt              rows "exp user activity start end"

``start``/``end`` are taken as inclusive 0-based row indices: with that reading the labels
reproduce the per-sample labels of the KCC2020 pickle exactly (experiment 1's first segment,
``1 1 5 250 1232``, covers rows 250-1232 there).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import numpy as np
from etils import epath

from tfds_builders.uci_hapt.hapt_pickle import Experiment

_NAME = re.compile(r"^(acc|gyro)_exp(\d+)_user(\d+)\.txt$", re.IGNORECASE)


def find_raw_dir(root: epath.Path) -> epath.Path | None:
    """``root/RawData`` or ``root/<one level>/RawData`` (the zip's "HAPT Data Set" folder)."""
    for cand in [root / "RawData", *sorted(root.glob("*/RawData"))]:
        if cand.is_dir() and (cand / "labels.txt").is_file():
            return cand
    return None


def _read_matrix(path: epath.Path, ncols: int, dtype=np.float64) -> np.ndarray:
    """The whitespace-separated numbers of ``path``; ``ValueError`` naming it otherwise."""
    try:
        with path.open("rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": the check below says it
            data = np.loadtxt(f, ndmin=2, dtype=dtype)
    except ValueError as e:  # also UnicodeDecodeError (another encoding)
        raise ValueError(f"{path}: {' '.join(str(e).split())}") from e
    if data.shape[0] == 0:
        raise ValueError(f"{path}: no rows")
    if data.shape[1] != ncols:
        raise ValueError(f"{path}: {data.shape[1]} columns, expected {ncols}")
    return data


def read(raw_dir: epath.Path, skip: Callable[[str, str], None]) -> list[Experiment]:
    """Reads every experiment; bad files are reported through ``skip(reason, where)``.

    Args:
        raw_dir: The ``RawData`` directory.
        skip: Callback for a skipped experiment or label row (reason, file/detail).

    Returns:
        Experiments sorted by user then UCI experiment number; ``session`` is the rank of the
        experiment number within its user.
    """
    labels = _read_matrix(raw_dir / "labels.txt", 5, np.int64)  # every row is needed
    files: dict[str, dict[tuple[int, int], epath.Path]] = {"acc": {}, "gyro": {}}
    for p in raw_dir.iterdir():
        m = _NAME.match(p.name)
        if m:
            files[m.group(1).lower()][(int(m.group(3)), int(m.group(2)))] = p
    out = []
    session_of: dict[int, int] = {}
    for user, exp in sorted(files["acc"].keys() | files["gyro"].keys()):
        acc_path = files["acc"].get((user, exp))
        gyro_path = files["gyro"].get((user, exp))
        # Sessions count every experiment file found, so a broken file does not renumber
        # the user's later sessions.
        session_of[user] = session_of.get(user, 0) + 1
        if acc_path is None or gyro_path is None:
            have = acc_path or gyro_path
            skip("missing_file", f"{have.name} has no acc/gyro partner in {raw_dir}")
            continue
        try:
            acc, gyro = _read_matrix(acc_path, 3), _read_matrix(gyro_path, 3)
        except ValueError as e:
            skip("malformed_file", str(e))
            continue
        if acc.shape[0] != gyro.shape[0]:
            skip("length_mismatch", f"{acc_path.name}: {acc.shape[0]} vs {gyro.shape[0]} rows")
            continue
        y = np.full(acc.shape[0], -1, dtype=np.int64)
        for e, u, act, start, end in labels[labels[:, 0] == exp]:
            if u != user or not (0 <= start <= end < y.shape[0]) or not 1 <= act <= 12:
                skip("bad_label_row", f"labels.txt row {[int(v) for v in (e, u, act, start, end)]}")
                continue
            y[start : end + 1] = act
        source = f"{acc_path.name}, {gyro_path.name}"
        out.append(Experiment(user, session_of[user], acc, gyro, y, source=source))
    return out
