"""The benchmark suite behind `make bench` (`python -m semseg.bench`): one module per question.

    patch_classifier  what FCN saved: the sliding-window patch classifier (naive, dense), FCN-8s, U-Net
    overhead        what Lightning + Hydra cost: a plain PyTorch loop vs `semseg.train`
    pipeline        does the DataLoader keep up with training; albumentations vs torchvision v2
    peer            semseg's U-Net vs segmentation_models_pytorch's Unet on the same encoder
    memory          peak RSS of a default training run and of predict on 2048×1024
    growth          time per training step at 128², 256², 512² for every model config
"""

from semseg.bench.memory import (
    measure_predict_memory,
    predict_peak_rss,
    write_random_checkpoint,
)
from semseg.bench.patch_classifier import (
    build_nets,
    format_table,
    measure,
    model_config,
    run_benchmark,
)
from semseg.bench.timing import count_flops, median_seconds

__all__ = [
    "build_nets", "count_flops", "format_table", "measure", "measure_predict_memory", "median_seconds",
    "model_config", "predict_peak_rss", "run_benchmark", "write_random_checkpoint",
]
