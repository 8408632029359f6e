"""User errors, the readers that raise them naming the file, and the wrapper every CLI runs in.

A mistake in what the user gave (a flag, a config key, an input file) is a :class:`UserError`
whose message names the flag, key or file; ``ConfigError`` is one. Every CLI's ``__main__``
calls :func:`run` instead of ``absl.app.run``: a user error, a flag-parsing error or an
``app.UsageError`` then prints one line ``error: <message>`` on stderr and exits with status
2 (:data:`EXIT_USER_ERROR`), without a traceback unless ``--verbosity=1`` (``-v 1``) or
``PRIMUS_TRACEBACK=1`` asks for it. Any other exception is a bug and keeps its traceback.

Readers of user files go through :func:`read_npz` / :func:`read_json`, which turn whatever
the decoder raises (bad zip, truncated member, pickled object array, invalid JSON) into a
:class:`FileError` naming the file, at the read site rather than by parsing messages later.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from absl import app, flags

from primus_jax import paths

EXIT_USER_ERROR = 2
EXIT_FAULT = 1
TRACEBACK_ENV = "PRIMUS_TRACEBACK"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip


class UserError(Exception):
    """Something the user gave is wrong; the message names the file, key or flag."""


class RunFault(Exception):
    """A named fault of a run (busy or unwritable workdir, damaged or unsaveable checkpoint,
    non-finite step): one line with its name and how to go on, exit status 1."""


class FileError(UserError, ValueError):
    """A user's file is missing, unreadable or does not hold what is expected."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {message}")


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, read without pickles.

    Raises:
      FileError: the file is missing, not a zip archive, damaged, or a member cannot be read
        without unpickling (object arrays); the message names the file (and the member).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileError(path, "does not exist" if not os.path.exists(path) else "not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise FileError(path, f"cannot read ({_reason(e)})") from e
    if head not in _ZIP_MAGIC:
        kind = "an .npy array" if head == b"\x93NUM" else "not a zip archive"
        raise FileError(path, f"expected an .npz archive (np.savez); the file is {kind}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as e:  # any decoder failure is the file's
        raise FileError(path, f"not a readable .npz archive ({_reason(e)})") from e
    out = {}
    with archive:
        for key in archive.files:
            try:
                out[key] = archive[key]
            except ValueError as e:
                if "allow_pickle" in str(e):
                    why = "holds Python objects (an object array), which are not read"
                    raise FileError(path, f"key {key!r} {why}; store numbers or strings") from e
                raise FileError(path, f"key {key!r}: cannot read ({_reason(e)})") from e
            except Exception as e:  # zlib.error, BadZipFile (bad CRC), EOFError, ...
                raise FileError(path, f"key {key!r}: cannot read ({_reason(e)})") from e
    return out


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON in ``path``; :class:`FileError` naming the file (and line) otherwise."""
    path = os.fspath(path)
    try:
        with paths.path(path).open("r", encoding="utf-8") as f:  # local or gs://
            return json.load(f)
    except FileNotFoundError as e:
        raise FileError(path, "does not exist") from e
    except json.JSONDecodeError as e:
        raise FileError(path, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise FileError(path, f"not UTF-8 text (byte {e.start}); JSON must be UTF-8") from e
    except (OSError, ValueError, RecursionError) as e:
        raise FileError(path, f"cannot read ({_reason(e)})") from e


def one_line(e: BaseException) -> str:
    """The exception's message on one line."""
    out = ""
    for line in (line.strip() for line in str(e).splitlines()):
        if line:
            out += (" " if not out or out.endswith(":") else "; ") + line
    return out.strip() or type(e).__name__


def traceback_wanted() -> bool:
    """``PRIMUS_TRACEBACK=1`` or absl ``--verbosity`` >= 1."""
    if os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0", "false", "False"):
        return True
    try:
        return flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].value >= 1
    except (KeyError, AttributeError, flags.Error):
        return False


def report(e: BaseException) -> int:
    """Prints ``error: <message>`` (after the traceback when wanted); returns the exit status."""
    if traceback_wanted():
        traceback.print_exception(e)
    if isinstance(e, RunFault):
        print(f"error: {type(e).__name__}: {one_line(e)}", file=sys.stderr, flush=True)
        return EXIT_FAULT
    print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def _parse_flags(argv: Sequence[str]) -> list[str]:
    try:
        args = flags.FLAGS(argv)
    except flags.Error as e:
        sys.exit(report(e))
    except Exception as e:  # a config file's get_config() raised: name the file and line
        where = traceback.extract_tb(e.__traceback__)[-1]
        error = UserError(f"{where.filename}:{where.lineno}: {_reason(e)} (loading the flags)")
        sys.exit(report(error.with_traceback(e.__traceback__)))
    # ml_collections defers a config file's load error (a missing file) to the first use of
    # the flag's value, an object whose every attribute raises: probe it here.
    for name in list(flags.FLAGS):
        flag = flags.FLAGS[name]
        if type(flag).__module__.startswith("ml_collections.config_flags"):
            try:
                getattr(flag.value, "_primus_probe", None)
            except Exception as e:
                sys.exit(report(UserError(f"--{name}: {one_line(e)}")))
    return args


def guarded(main: Callable) -> Callable:
    """``main`` with user errors and ``app.UsageError`` reported by :func:`report`."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except (UserError, RunFault, app.UsageError) as e:
            sys.exit(report(e))

    return wrapped


def run(main: Callable, argv: Sequence[str] | None = None) -> None:
    """``absl.app.run(main)`` with one-line user errors (see the module docstring)."""
    app.run(guarded(main), argv=argv, flags_parser=_parse_flags)
