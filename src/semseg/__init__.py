"""semseg: a Lightning + Hydra experiment template for semantic segmentation."""

__version__ = "0.1.0"
