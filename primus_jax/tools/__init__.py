"""Command-line tools: PyTorch checkpoint import, embedding of IMU files, model export.

python -m primus_jax.tools.import_torch --checkpoint primus.ckpt --workdir runs/primus_torch
python -m primus_jax.tools.embed_imu --checkpoint runs/primus_torch --input x.npz --output y.npz
python -m primus_jax.tools.export --checkpoint runs/primus_torch --output model.stablehlo
"""
