"""A real GCS JSON-API server on localhost (the ``gcp-storage-emulator`` package, in its own
process) and the environment that points every client at it: gcsfs (epath's ``gs://``
backend), google-cloud-storage and TensorStore (orbax's array writer)."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

BUCKET = "primus-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(url: str) -> dict:
    """Variables that redirect the GCS clients to ``url`` with no credentials."""
    return {
        "STORAGE_EMULATOR_HOST": url,  # gcsfs, google-cloud-storage
        "TENSORSTORE_GCS_HTTP_URL": url,  # TensorStore's gcs kvstore driver
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # TensorStore: skip the metadata server
        "FSSPEC_GCS_TOKEN": "anon",  # gcsfs: no credential search
        # gcsfs >= 2026 asks the storage-control gRPC API for the bucket type (zonal or
        # hierarchical); the emulator has no such API and each lookup waits 60 s.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }


@contextlib.contextmanager
def emulator():
    """Starts the server with an in-memory store and one bucket; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(os.path.dirname(__file__), "gcs_server.py"),
            str(port),
            BUCKET,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/storage/v1/b/{BUCKET}", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the GCS emulator did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.kill()
        proc.wait()
