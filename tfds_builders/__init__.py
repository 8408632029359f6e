"""TFDS builders that write 5 s, 50 Hz, 6-channel IMU segments (``docs/data.md``).

One folder per dataset (``egoexo4d``, ``ego4d``, ``realworld``, ``uci_hapt``, and ``imu_folder``
for the user's own recordings), each with a
``Builder`` class. Shared pieces: ``segment_format`` (features, example validation, configs),
``segment_builder`` (base class: embedding merge, skip counts, class balance),
``splits`` and ``narration``. Embedding stores are read with ``primus_jax.embed.store``;
signal processing lives in ``primus_jax.data.signal``.
"""
