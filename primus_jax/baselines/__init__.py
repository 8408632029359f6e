"""Baselines of the PRIMUS paper that are not a setting of the PRIMUS loss.

* :mod:`~primus_jax.baselines.multitask_ssl`: MultitaskSSL (Saeed et al. 2019) pretraining,
  selected with ``config.objective = "multitask_ssl"`` and run by the ordinary train loop.
* :mod:`~primus_jax.baselines.supervised`: "Standard Training", a randomly initialised encoder
  plus a linear head trained end to end on the k shots, and its few-shot sweep.

(SimCLR and IMU2CLIP are loss-weight settings of PRIMUS: ``configs/simclr.py``,
``configs/imu2clip.py``.)
"""
