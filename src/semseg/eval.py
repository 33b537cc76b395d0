"""Score a checkpoint written by semseg.train on a data split.

    python -m semseg.eval ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt [data=...]
    python -m semseg.eval ckpt_path=... data=cityscapes predictions_dir=preds   # + labelId PNGs

Besides the `test/...` metrics it writes the full report to `<run>/report/` (per-class and
per-image tables, summary scores, the worst images; semseg.callbacks.evaluation_report).

The network is rebuilt from the model config stored in the checkpoint, so only the data needs
choosing; its classes must match the checkpoint's.
"""

import logging

import hydra
import lightning as L
from omegaconf import DictConfig

from semseg.callbacks.evaluation_report import EvaluationReport
from semseg.callbacks.predictions import PredictionWriter
from semseg.checkpoints.reading import load_model
from semseg.errors import SemsegError
from semseg.loggers import finish_loggers
from semseg.run_setup import set_up_eval
from semseg.utils.cli import refuse_unknown_options, report_user_errors
from semseg.utils.config import CONFIG_DIR, instantiate, instantiate_dict, print_config_tree
from semseg.utils.run_info import write_metrics

log = logging.getLogger("semseg.eval")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint on the chosen split; return the `test/...` metrics."""
    model, meta = load_model(cfg.ckpt_path, cfg.get("trusted_targets") or [])  # one read: weights and the config that built them
    set_up_eval(cfg, meta)
    datamodule = instantiate(cfg.data)
    if datamodule.class_names != list(meta["class_names"]):
        raise SemsegError(
            f"checkpoint {cfg.ckpt_path} was trained on classes {list(meta['class_names'])}, but the "
            f"data config has {datamodule.class_names}. Evaluate on data with the same classes."
        )
    L.seed_everything(cfg.seed, workers=True)
    model.inference = instantiate(cfg.inference)
    model.inference.check(model.net)
    loggers = instantiate_dict(cfg.get("logger"))
    callbacks = [PredictionWriter(cfg.predictions_dir)] if cfg.get("predictions_dir") else []
    if cfg.get("report"):
        callbacks.append(EvaluationReport(cfg.report.output_dir, cfg.report.num_worst))
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    try:
        trainer.test(model, datamodule=datamodule)
    finally:
        finish_loggers(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    write_metrics(cfg.paths.output_dir, metrics)
    return metrics


@refuse_unknown_options
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval.yaml")
@report_user_errors
def main(cfg: DictConfig) -> float:
    if cfg.extras.print_config:
        print_config_tree(cfg)
    metrics = evaluate(cfg)
    log.info("test/mIoU = %s", metrics.get("test/mIoU"))
    return metrics.get("test/mIoU")


if __name__ == "__main__":
    main()
