"""embed_imu's input file: damaged archives and members fail naming the file, before any
checkpoint is loaded (the end-to-end runs are in tests/inference_test.py)."""

import collections
import shutil

import numpy as np
from support import fuzz
from support import realistic_imu as imu

from primus_jax.tools import embed_imu


def test_fuzzed_inputs_are_read_or_refused_naming_the_file(tmp_path):
    windows = imu.stacked(1)[0]  # (6, 250, 6)
    stream = np.concatenate(list(imu.stacked(1)[0]))  # (1500, 6), one 30 s recording
    bases = {
        "windows": (str(tmp_path / "windows.npz"), {"X": windows}),
        "stream": (str(tmp_path / "stream.npz"), {"X": stream, "t": np.arange(1500) / 50.0}),
    }
    for path, arrays in bases.values():
        np.savez(path, **arrays)
    mutations = [*fuzz.BINARY_MUTATIONS, *fuzz.NPZ_MEMBER_MUTATIONS]
    outcomes = collections.Counter()
    for i, (mode, mutation, seed) in enumerate(fuzz.cases(list(bases), mutations, 40, seed=2)):
        path = str(tmp_path / f"case{i}.npz")
        shutil.copy(bases[mode][0], path)
        if mutation in fuzz.NPZ_MEMBER_MUTATIONS:
            fuzz.corrupt_npz(path, mutation, seed)
        else:
            fuzz.corrupt_file(path, mutation, seed)

        def load(p=path, s=mode == "stream"):
            return embed_imu.load_input(p, stream=s, layout="channels_last", rate_hz=None)

        kind, result = fuzz.check_outcome(load, path)
        outcomes[kind] += 1
        if kind == "ok":
            x, t = result
            assert np.isfinite(x).all() and (t is None or np.isfinite(t).all())
            assert x.shape[-1] == 6
    assert outcomes["error"] >= 25, outcomes
