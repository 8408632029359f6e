"""Dataset preparation: builds a TFDS segment dataset on first use, and opens built ones.

A config whose text-embedding store does not exist yet (e.g. ``uci_hapt/minilm`` on a fresh
machine) is prepared by building the dataset's ``raw`` config, embedding its texts with
``primus_jax.embed`` and then building the requested config from that store. A dataset with
a text encoder and class prompts then has its prompts embedded into the prompt cache
(``embed/prompts.py``), so that zero-shot evaluation needs no torch. All imports of
tensorflow_datasets are lazy.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from absl import logging

OUR_DATASETS = ("egoexo4d", "ego4d", "imu_folder", "realworld", "uci_hapt")


def default_data_dir() -> str:
    """``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def cache_dir() -> str:
    """Where datasets read from ``gs://`` are mirrored: ``$PRIMUS_DATA_CACHE``, else
    ``~/.cache/primus_jax/tfds``."""
    return os.environ.get("PRIMUS_DATA_CACHE") or os.path.expanduser("~/.cache/primus_jax/tfds")


_MIRROR_RECORD = ".primus_mirror.json"


def local_data_dir(data_dir: str, key: str, name: str) -> str:
    """A local data_dir holding the built dataset ``name`` (``dataset/config[:version]``).

    A local ``data_dir`` is returned as it is. TFDS keeps our datasets as ArrayRecord files,
    and array_record (0.8) opens only local files (google/array_record#120), so for a URL
    (``gs://``) the dataset's folder ``<data_dir>/<dataset>/<config>`` is mirrored once under
    :func:`cache_dir` and read from there; it is copied again when the remote listing (names
    and sizes) changed. The copy goes to a temporary folder renamed into place, so processes
    that mirror at once, or a copy killed halfway, never leave a partial dataset. Building
    into a URL is not supported (array_record writes local files): a dataset missing there is
    a ConfigError naming ``key``.
    """
    if "://" not in str(data_dir):
        return data_dir
    import json
    import shutil
    import tempfile

    import fsspec

    from primus_jax.config import ConfigError

    url = str(data_dir).rstrip("/")
    dataset = name.split(":")[0].strip("/")
    src = f"{url}/{dataset}"
    fs, root = fsspec.core.url_to_fs(src)
    try:
        listing = fs.find(root, detail=True)
    except (OSError, ValueError) as e:
        raise ConfigError(key, f"{src}: cannot list it ({type(e).__name__}: {e})") from e
    files = {
        os.path.relpath(p, root): int(info.get("size") or 0)
        for p, info in listing.items()
        if info.get("type") != "directory" and not p.endswith("/")
    }
    if not any(f.endswith("dataset_info.json") for f in files):
        raise ConfigError(
            key,
            f"{src}: no built dataset {name!r} there. Building into a URL is not supported "
            "(ArrayRecord files are written locally): build it locally (python "
            "launch/prepare_data.py ...) and copy the folder up: gcloud storage cp -r "
            f"~/tensorflow_datasets/{dataset} {url}/{os.path.dirname(dataset) or '.'}",
        )
    scheme, rest = url.split("://", 1)
    local_root = os.path.join(cache_dir(), scheme, rest)
    final = os.path.join(local_root, dataset)
    record = {"source": src, "files": files}
    try:
        with open(os.path.join(final, _MIRROR_RECORD)) as f:
            if json.load(f) == record:
                logging.info("data: %s read from its local mirror %s", src, final)
                return local_root
    except (OSError, ValueError):
        pass
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".mirror-", dir=os.path.dirname(final))
    try:
        logging.info("data: mirroring %s (%d files) to %s", src, len(files), final)
        for rel in files:
            dst = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            fs.get_file(f"{root}/{rel}", dst)
        with open(os.path.join(tmp, _MIRROR_RECORD), "w") as f:
            json.dump(record, f)
        old = f"{tmp}.old"
        if os.path.exists(final):
            os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:  # another process put its complete copy in place first
            pass
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local_root


def import_builder_module(name: str):
    """Imports ``tfds_builders.<dataset>`` so TFDS knows the builder (``name`` may carry a
    config: ``uci_hapt/minilm``)."""
    dataset = name.split("/")[0].split(":")[0]
    module = f"tfds_builders.{dataset}.{dataset}_dataset_builder"
    if importlib.util.find_spec("tfds_builders") is None:
        raise ModuleNotFoundError(
            "tfds_builders is not importable: install the project (pip install -e .) or run "
            "from the repository root"
        )
    if importlib.util.find_spec(f"tfds_builders.{dataset}") is None:
        return None  # not one of ours: a dataset registered elsewhere (tfds' catalogue)
    return importlib.import_module(module)


def _builder(name: str, data_dir: str):
    import tensorflow_datasets as tfds

    import_builder_module(name)
    return tfds.builder(name, data_dir=data_dir)


def _download_config(manual_dir: str | None):
    import tensorflow_datasets as tfds

    return tfds.download.DownloadConfig(manual_dir=manual_dir or None)


def prepare_dataset(name: str, data_dir: str, manual_dir: str | None = None) -> None:
    """Builds ``name`` into ``data_dir`` (ArrayRecord) unless it is already there.

    A missing text-embedding store is made first (see the module docstring), with the encoder
    the config is named after, under ``<data_dir>/manual/<dataset>/`` unless ``manual_dir``
    is given.
    """
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return
    dataset = builder.name
    cfg = builder.builder_config
    manual_dir = manual_dir or os.path.join(data_dir, "manual", dataset)
    text_store = getattr(cfg, "text_store", None)
    if text_store and not os.path.isabs(text_store):
        store_dir = os.path.join(manual_dir, text_store)
        if not os.path.exists(os.path.join(store_dir, "store.json")):
            _embed_texts_of_raw(dataset, data_dir, manual_dir, store_dir, encoder=cfg.name)
    logging.info("data: building %s into %s (manual dir %s)", name, data_dir, manual_dir)
    builder.download_and_prepare(
        file_format="array_record", download_config=_download_config(manual_dir)
    )
    _cache_class_prompts(name, builder.info.metadata or {}, data_dir)


def _cache_class_prompts(name: str, metadata, data_dir: str) -> None:
    """Embeds the dataset's zero-shot prompts into the prompt cache (``embed/prompts.py``),
    so that evaluating on it needs no text encoder; skipped, with a line, when it cannot."""
    encoder, prompts = metadata.get("text_encoder"), metadata.get("class_prompts")
    if not encoder or not prompts:
        return
    from primus_jax.embed import prompts as prompt_lib

    flat = [p for ps in prompts for p in ps]
    try:
        _, stats = prompt_lib.embed_prompts(
            flat, encoder=encoder, cache_root=prompt_lib.default_cache_root(data_dir)
        )
    except Exception as e:  # e.g. no torch here, or clip_text, whose weights need a model_dir
        logging.info("data: %s's class prompts not cached (%s); evaluation embeds them", name, e)
        return
    logging.info("data: %s's %d class prompts: %s", name, len(flat), stats.describe())


def _embed_texts_of_raw(dataset, data_dir, manual_dir, store_dir, *, encoder):
    from primus_jax.embed import write_text_store

    raw = _builder(f"{dataset}/raw", data_dir)
    if not raw.is_prepared():
        logging.info("data: building %s/raw into %s", dataset, data_dir)
        raw.download_and_prepare(
            file_format="array_record", download_config=_download_config(manual_dir)
        )
    ids, texts = [], []
    for split in raw.info.splits:
        src = raw.as_data_source(split=split)
        for ex in src.__getitems__(list(range(len(src)))):
            text = ex["text"].decode("utf-8") if isinstance(ex["text"], bytes) else ex["text"]
            if text:
                ids.append(ex["id"].decode("utf-8") if isinstance(ex["id"], bytes) else ex["id"])
                texts.append(text)
    logging.info(
        "data: embedding %d texts of %s with %s -> %s", len(texts), dataset, encoder, store_dir
    )
    write_text_store(ids, texts, store_dir, encoder=encoder)


def open_source(name: str, split: str, data_dir: str):
    """``(data_source, info)`` for a built dataset (``tfds.data_source``)."""
    import tensorflow_datasets as tfds

    import_builder_module(name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise FileNotFoundError(
            f"config.data.name={name!r}: no such dataset is registered and none is built in "
            f"{data_dir}; ours are {sorted(OUR_DATASETS)} (tfds_builders/)"
        ) from None
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"dataset {name} is not built in {data_dir}: set config.data.prepare=True or run "
            f"`tfds build` for it (ArrayRecord: --file_format=array_record)"
        )
    return builder.as_data_source(split=split), builder.info


def prepare_once(name: str, data_dir: str, manual_dir: str | None) -> None:
    """Builds the dataset on process 0 only; the others wait (one shared data_dir), at a
    barrier that outlasts a long build (a device collective under gloo waits only 30 s)."""
    import jax

    from primus_jax import distributed

    if jax.process_index() == 0:
        prepare_dataset(name, data_dir, manual_dir)
    distributed.wait_for_all_processes("dataset_prepared")
