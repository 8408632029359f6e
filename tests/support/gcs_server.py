"""Runs the ``gcp-storage-emulator`` server: ``python gcs_server.py PORT BUCKET``.

One fix on top of the package: media downloads carry ``x-goog-generation`` (real GCS sends
it; TensorStore's gcs driver, which orbax writes arrays with, refuses a read without it).
"""

import sys
import threading

from gcp_storage_emulator.handlers import objects

_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
    _download(request, response, storage, *args, **kwargs)
    try:
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    except Exception:  # not found: the original handler set the status
        return
    response["x-goog-generation"] = str(obj["generation"])
    response["x-goog-metageneration"] = str(obj["metageneration"])


objects.download = _download_with_generation

from gcp_storage_emulator import server  # noqa: E402  (reads objects.download at import)

if __name__ == "__main__":
    port, bucket = int(sys.argv[1]), sys.argv[2]
    srv = server.create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    srv.start()
    threading.Event().wait()
