"""User errors: one line on stderr naming the file, key or flag, exit status 2, no traceback
(unless asked for), for every CLI; the readers behind them name the file."""

import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from support import REPO, fuzz, xla_flags

from primus_jax import cli_errors
from primus_jax.config import ConfigError

# absl's own log lines ("I1202 04:26:22.145112 1401 main.py:39] ..."), if any.
_ABSL_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")


def _npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


# --- in-process: the readers and the report -------------------------------------------------


def test_read_npz_names_the_file_and_member(tmp_path):
    x = np.ones((2, 250, 6), np.float32)
    good = _npz(tmp_path / "good.npz", X=x, y=np.arange(2))
    assert set(cli_errors.read_npz(good)) == {"X", "y"}
    cases = {
        "missing.npz": ("does not exist", None),
        "text.npz": ("not a zip archive", b"hello, not an archive"),
        "array.npz": ("an .npy array", None),
        "cut.npz": ("not a readable .npz", None),
        "objects.npz": ("key 'y' holds Python objects", None),
    }
    np.save(tmp_path / "array.npy", x)
    os.rename(tmp_path / "array.npy", tmp_path / "array.npz")
    (tmp_path / "text.npz").write_bytes(cases["text.npz"][1])
    (tmp_path / "cut.npz").write_bytes(open(good, "rb").read()[:300])
    _npz(tmp_path / "objects.npz", X=x, y=np.array([{"a": 1}, None], dtype=object))
    for name, (message, _) in cases.items():
        with pytest.raises(cli_errors.FileError, match=re.escape(message)) as e:
            cli_errors.read_npz(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name))
    # A member whose bytes are damaged (bad CRC) is named too.
    bad_crc = tmp_path / "crc.npz"
    data = bytearray(open(good, "rb").read())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("X.npy")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
    bad_crc.write_bytes(bytes(data))
    with pytest.raises(cli_errors.FileError, match=r"crc\.npz: key 'X': cannot read"):
        cli_errors.read_npz(bad_crc)


def test_read_json_names_file_and_line(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(cli_errors.FileError, match=r"r\.json: invalid JSON at line 2"):
        cli_errors.read_json(p)
    p.write_bytes('{"a": "é"}'.encode("latin-1"))
    with pytest.raises(cli_errors.FileError, match="not UTF-8"):
        cli_errors.read_json(p)
    with pytest.raises(cli_errors.FileError, match="does not exist"):
        cli_errors.read_json(tmp_path / "none.json")


def test_report_is_one_line_and_the_traceback_only_on_request(capsys, monkeypatch):
    monkeypatch.delenv(cli_errors.TRACEBACK_ENV, raising=False)
    e = ConfigError("optim.lr", "must be > 0\n(got -1)")
    assert isinstance(e, cli_errors.UserError)
    try:
        raise e
    except ConfigError as caught:
        assert cli_errors.report(caught) == cli_errors.EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == "error: config.optim.lr: must be > 0; (got -1)\n"
    monkeypatch.setenv(cli_errors.TRACEBACK_ENV, "1")
    try:
        raise e
    except ConfigError as caught:
        cli_errors.report(caught)
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith(
        "error: config.optim.lr: must be > 0; (got -1)\n"
    )


def test_guarded_reports_user_errors_and_lets_bugs_through(capsys, monkeypatch):
    monkeypatch.delenv(cli_errors.TRACEBACK_ENV, raising=False)

    def bad_input(argv):
        raise cli_errors.FileError("in.npz", "key 'X' missing")

    with pytest.raises(SystemExit) as e:
        cli_errors.guarded(bad_input)(["prog"])
    assert e.value.code == 2 and capsys.readouterr().err == "error: in.npz: key 'X' missing\n"

    def bug(argv):
        raise KeyError("internal")

    with pytest.raises(KeyError):  # not a user error: its traceback stays
        cli_errors.guarded(bug)(["prog"])


# --- subprocesses: each CLI, run for real ---------------------------------------------------


def _cases(tmp):
    """name -> (argv after ``python``, extra env, substrings the error line must hold)."""
    x = np.random.default_rng(0).normal(size=(8, 6, 250)).astype(np.float32)  # channels first
    bad_npz = _npz(tmp / "bad.npz", X=x, y=np.arange(8) % 2, subject=np.array(["a", "b"] * 4))
    no_x = _npz(tmp / "no_x.npz", windows=x)
    notzip = tmp / "notzip.npz"
    notzip.write_bytes(b"PRIMUS " * 20)
    sentinel = tmp / "PWNED"
    evil = tmp / "evil.ckpt"
    evil.write_bytes(fuzz.attack_pickle(sentinel, 1))  # builtins.eval
    with open(os.path.join(REPO, "tests/evaluation/golden/fewshot_report.json")) as f:
        rep = json.load(f)
    del next(iter(rep["datasets"].values()))["methods"]
    (tmp / "nomethods.json").write_text(json.dumps(rep))
    m, w = [sys.executable, "-m"], tmp / "w"
    fewshot = [*m, "primus_jax.main", "--config=configs/fewshot.py", f"--workdir={w}"]
    tb = {cli_errors.TRACEBACK_ENV: "1"}
    return {
        # The few-shot case that printed a 27-line traceback (moved here from run_test.py).
        "fewshot_bad_npz": (
            [*fewshot, f"--config.data=npz:{bad_npz}"],
            {},
            ["bad.npz", "key 'X'", "(N, 250, 6)"],
        ),
        "main_bad_flag": ([*fewshot, "--config.trials=abc"], {}, ["--config.trials=abc"]),
        "embed_imu_no_key": (
            [*m, "primus_jax.tools.embed_imu", "--checkpoint=x", f"--input={no_x}", "--output=o"],
            {},
            ["no_x.npz", "'X'"],
        ),
        "embed_imu_not_zip": (
            [
                *m,
                "primus_jax.tools.embed_imu",
                "--checkpoint=x",
                f"--input={tmp / 'notzip.npz'}",
                "--output=o",
            ],
            {},
            ["notzip.npz", "not a zip archive"],
        ),
        "import_torch_evil": (
            [*m, "primus_jax.tools.import_torch", f"--checkpoint={evil}", f"--workdir={w}"],
            {},
            ["evil.ckpt", "refusing to load"],
        ),
        "merge_missing_key": (
            [*m, "primus_jax.tools.merge_reports", f"--output={w}", f"A={tmp / 'nomethods.json'}"],
            {},
            ["nomethods.json", "methods"],
        ),
        "prepare_missing_config": (
            [sys.executable, "launch/prepare_data.py", f"--config={tmp / 'none.py'}"],
            {},
            ["--config", "none.py"],
        ),
        "embed_no_store": (
            [*m, "primus_jax.embed", f"--info={tmp / 'nostore'}"],
            {},
            ["nostore"],
        ),
        # With the traceback asked for: by the environment, or by absl's --verbosity.
        "benchmark_bad_shots_tb": (
            [*m, "primus_jax.benchmarks.fewshot", "--shots=1,five"],
            tb,
            ["--shots=1,five"],
        ),
        "export_no_checkpoint_v1": (
            [
                *m,
                "primus_jax.tools.export",
                f"--checkpoint={tmp / 'nope'}",
                "--output=o",
                "-v",
                "1",
            ],
            {},
            ["nope", "does not exist"],
        ),
    }, sentinel


def test_every_cli_reports_bad_input_in_one_line(tmp_path):
    cases, sentinel = _cases(tmp_path)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags())
    env.pop(cli_errors.TRACEBACK_ENV, None)
    procs = {  # all at once: the imports dominate, and they overlap
        name: subprocess.Popen(
            argv,
            cwd=REPO,
            env={**env, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (argv, extra, _) in cases.items()
    }
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=300)
        lines = [line for line in stderr.splitlines() if line and not _ABSL_LOG.match(line)]
        assert proc.returncode == 2, (name, stderr[-2000:])
        want_traceback = name.endswith(("_tb", "_v1"))
        assert ("Traceback" in stderr) == want_traceback, (name, stderr[-2000:])
        if not want_traceback:
            assert len(lines) == 1, (name, lines)
        assert lines[-1].startswith("error: "), (name, lines)
        for part in cases[name][2]:
            assert part in lines[-1], (name, part, lines[-1])
    assert not sentinel.exists()
