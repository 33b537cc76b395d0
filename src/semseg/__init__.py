"""semseg: a Lightning + Hydra experiment template for semantic segmentation."""

import os

# Waiting OpenMP threads sleep instead of spinning, so the data-loader workers get the cores they
# need (CamVid recipe on 2 cores: 12-25 % less CPU time a run; README, "Where an epoch's time goes").
# Set before torch loads OpenMP; an OMP_WAIT_POLICY of your own is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
