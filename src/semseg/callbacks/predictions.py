"""Write test predictions as PNG files in the format a dataset's official evaluation reads.

A dataset with an `export_ids` table (Cityscapes: train id -> labelId) gets grayscale PNGs of
those ids, named `<item name>.png`, which cityscapesscripts' evalPixelLevelSemanticLabeling
matches to `<city>_<seq>_<frame>_gtFine_labelIds.png`. Other datasets get palette PNGs of class
indices with the data's colours, the format of VOC's SegmentationClass. Every prediction has its
image's own size; item names with folders (`data=folder`) become subfolders.
"""

from pathlib import Path

import lightning as L
import numpy as np
from PIL import Image

from semseg.data.palette import save_palette_png


class PredictionWriter(L.Callback):
    """Save the argmax of every test batch's logits under `output_dir`."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        loaders = trainer.test_dataloaders
        dataset = (loaders[0] if isinstance(loaders, (list, tuple)) else loaders).dataset
        self.export_ids = getattr(dataset, "export_ids", None)
        self.palette = getattr(trainer.datamodule, "palette", None)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for name, prediction in zip(batch["name"], outputs):
            prediction = prediction.cpu().numpy().astype(np.uint8)
            path = self.output_dir / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.export_ids is not None:
                Image.fromarray(self.export_ids[prediction], mode="L").save(path)
            else:
                save_palette_png(prediction, path, self.palette)
