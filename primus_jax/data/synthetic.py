"""Synthetic paired IMU / video / text data derived from a shared latent.

Each segment has a class ``c`` and a latent ``z = prototype[c] + noise``. The IMU window is a
sum of sinusoids (0.5-6 Hz) per channel whose amplitudes are softplus(linear(z)) (plus gravity on
acc z and sensor noise); the "video" and "text" embeddings are fixed random projections of
``z`` plus noise, L2-normalised. The three modalities therefore share information, so the
multimodal and nearest-neighbour losses can actually fall, and the class gives a probe target.
Segments carry identities like the segment format's ids (optionally several segments per
recording, to exercise the queue's recording exclusion).

Everything is a deterministic function of the seed, so tests and the smoke config are exact.
"""

from __future__ import annotations

import numpy as np

from primus_jax import contract, identity, rng_streams

RATE_HZ, WINDOW_T = contract.RATE_HZ, contract.WINDOW_T
_FREQS_HZ = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0])


class SyntheticPairedSource:
    """Random-access source of paired segments (``len`` and ``__getitem__`` / ``get_batch``)."""

    def __init__(
        self,
        num_examples: int,
        mm_dim: int,
        seed: int,
        *,
        num_classes: int = 8,
        latent_dim: int = 16,
        imu_noise: float = 0.3,
        emb_noise: float = 0.1,
        video_fraction: float = 1.0,
        text_fraction: float = 1.0,
        windows_per_recording: int = 1,
    ):
        rng = np.random.default_rng([seed, rng_streams.NP_SYNTHETIC])
        n, lat = num_examples, latent_dim
        protos = 1.5 * rng.normal(size=(num_classes, lat))
        self.label = rng.integers(0, num_classes, n).astype(np.int32)
        z = protos[self.label] + 0.5 * rng.normal(size=(n, lat))
        if windows_per_recording > 1:
            # Windows of one recording share its first window's class and latent (plus a
            # little drift), so they look alike, as overlapping real windows do.
            first = np.arange(n) // windows_per_recording * windows_per_recording
            drift = np.random.default_rng([seed, rng_streams.NP_SYNTHETIC, 1])
            self.label = self.label[first]
            z = z[first] + 0.15 * drift.normal(size=(n, lat))
        amp_proj = rng.normal(size=(lat, 6, len(_FREQS_HZ))) / np.sqrt(lat)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 6, len(_FREQS_HZ)))
        t = np.arange(WINDOW_T) / RATE_HZ
        imu = np.empty((n, WINDOW_T, 6), np.float32)
        for s in range(0, n, 1024):  # chunked to bound the (n, 6, F, T) temporary
            # Positive amplitudes: with random phases the sign of a sinusoid's amplitude is
            # unobservable, so a signed linear map would hide half of the latent.
            amp = np.logaddexp(0.0, np.einsum("nl,lcf->ncf", z[s : s + 1024], amp_proj))
            wave = np.sin(
                2 * np.pi * _FREQS_HZ[None, None, :, None] * t + phase[s : s + 1024, ..., None]
            )
            imu[s : s + 1024] = np.einsum("ncf,ncft->ntc", amp, wave)
        imu[..., 2] += 9.80665  # gravity on acc z, as a head-worn sensor at rest would read
        imu += imu_noise * rng.normal(size=imu.shape)
        self.imu = imu.astype(np.float32)

        def embed(proj_seed):
            proj = np.random.default_rng([seed, proj_seed]).normal(size=(lat, mm_dim))
            e = z @ proj + emb_noise * np.sqrt(lat) * rng.normal(size=(n, mm_dim))
            return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)

        self.has_video = rng.random(n) < video_fraction
        self.has_text = rng.random(n) < text_fraction
        self.video = embed(1) * self.has_video[:, None]
        self.text = embed(2) * self.has_text[:, None]
        # Identities as the segment format names them (id = <recording>/<start_ms>); groups of
        # ``windows_per_recording`` consecutive segments share a recording.
        rec = [f"synthetic/rec{i // windows_per_recording}" for i in range(n)]
        self.recording_id = identity.hash_strings(rec)
        self.segment_id = identity.hash_strings(
            f"{r}/{5000 * (i % windows_per_recording)}" for i, r in enumerate(rec)
        )

    def __len__(self) -> int:
        return len(self.label)

    def mask_multimodal(self, keep: np.ndarray) -> None:
        """Drops video and text of the segments where ``keep`` is false (IMU-only rows)."""
        self.has_video &= keep
        self.has_text &= keep
        self.video *= self.has_video[:, None]
        self.text *= self.has_text[:, None]

    def get_batch(self, idx: np.ndarray) -> dict:
        return {
            "imu": self.imu[idx],
            "video": self.video[idx],
            "text": self.text[idx],
            "has_video": self.has_video[idx],
            "has_text": self.has_text[idx],
            "segment_id": self.segment_id[idx],
            "recording_id": self.recording_id[idx],
        }

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.get_batch(np.array([i])).items()}


class EpochBatchIterator:
    """This process's rows of each global batch, in the shared visiting order
    (:mod:`primus_jax.data.order`: a new permutation every epoch, remainder dropped).

    The iterator is fully described by ``{"step"}``, which is saved in every checkpoint, so a
    resumed run sees exactly the batches an uninterrupted one would.
    """

    def __init__(
        self,
        source,
        global_batch: int,
        seed: int,
        *,
        process_index: int = 0,
        process_count: int = 1,
    ):
        from primus_jax.data.order import EpochOrder

        self.source = source
        self.order = EpochOrder(len(source), global_batch, seed, process_index, process_count)
        self.step = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        rows = self.order.rows(self.step)
        self.step += 1
        return self.source.get_batch(rows)

    def get_state(self) -> dict:
        return {"step": self.step}

    def set_state(self, state: dict) -> None:
        self.step = int(state["step"])
