"""Helpers shared by the tests: independent references, realistic IMU windows, the PyTorch
reference encoder, the multi-process set-up. ``REPO`` is the repository root."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
