"""The benchmark suite behind `make bench` (`python -m semseg.bench`): one module per question.

    sliding_window_cost  what FCN saved: the sliding-window patch classifier (naive, dense), FCN-8s,
                    U-Net (`--only patch_classifier`)
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
from semseg.bench.sliding_window_cost import (
    build_nets,
    format_table,
    measure,
    composed_model_config,
    run_benchmark,
)
from semseg.bench.timing import count_flops, median_seconds

__all__ = [
    "build_nets", "composed_model_config", "count_flops", "format_table", "measure", "measure_predict_memory",
    "median_seconds", "predict_peak_rss", "run_benchmark", "write_random_checkpoint",
]
