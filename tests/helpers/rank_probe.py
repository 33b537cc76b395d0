"""A test callback: every process records what it trains with, so tests can compare ranks."""

import json
from pathlib import Path

import lightning as L


class RankProbe(L.Callback):
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "decoder": type(pl_module.net.decoder).__name__,
        }
        out = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps(record))
