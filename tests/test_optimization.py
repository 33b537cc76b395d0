"""Fine-tuning settings: parameter groups (`model.optimizer_groups`) and warmup (`model.scheduler.warmup_steps`)."""

import csv
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from semseg.errors import SemsegError
from semseg.models.param_groups import make_optimizer, parameter_groups
from semseg.train import train

FINE_TUNING = ["model.optimizer_groups.encoder_lr_mult=0.1", "model.optimizer_groups.no_weight_decay_norm_bias=true"]
BASE_LR, WEIGHT_DECAY = 0.003, 0.0001  # configs/model/optimizer/adamw.yaml


def test_groups_split_the_encoder_off_and_exempt_norms_and_biases_from_decay(make_cfg):
    module = instantiate(make_cfg(FINE_TUNING).model)
    groups = parameter_groups(module, module.net.encoder, **module.optimizer_groups)
    optimizer = make_optimizer(module.optimizer_factory, groups)
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert set(groups) == {"encoder", "encoder_no_decay", "decoder", "decoder_no_decay"}
    ids = {name: {id(p) for p in group["params"]} for name, group in groups.items()}
    assert sum(map(len, ids.values())) == len(list(module.parameters()))
    assert ids["encoder"] | ids["encoder_no_decay"] == {id(p) for p in module.net.encoder.parameters()}
    # in these CNNs the one-dimensional parameters are exactly the BatchNorm scales and shifts and the biases
    flat = {id(p) for p in module.parameters() if p.ndim == 1}
    assert flat and ids["encoder_no_decay"] | ids["decoder_no_decay"] == flat
    for name, group in groups.items():
        assert group["lr"] == pytest.approx(BASE_LR * (0.1 if name.startswith("encoder") else 1))
        assert group["weight_decay"] == (0.0 if name.endswith("no_decay") else WEIGHT_DECAY)


def test_default_settings_keep_one_unnamed_group(make_cfg):
    module = instantiate(make_cfg([]).model)
    (group,) = parameter_groups(module, module.net.encoder, **module.optimizer_groups)
    assert "name" not in group and len(group["params"]) == len(list(module.parameters()))


def learning_rates(run_dir: Path) -> dict[str, list[float]]:
    """Every `lr-AdamW/...` column of the run's CSV metrics, in step order."""
    with open(run_dir / "csv" / "metrics.csv") as file:
        rows = [row for row in csv.DictReader(file) if row.get("lr-AdamW/encoder")]
    rows.sort(key=lambda row: int(row["step"]))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key.startswith("lr-AdamW/")}


DECAY_AT_LAST_STEP = {"poly": (1 - 4 / 5) ** 0.9, "cosine": (1 + math.cos(math.pi * 4 / 5)) / 2}


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_every_group_warms_up_then_decays_in_a_real_run(make_cfg, schedule):
    """8 steps (16 images, batch 4, 2 epochs): warmup over steps 0-2, decay over the 5 left."""
    cfg = make_cfg([f"model/scheduler={schedule}", "model.scheduler.warmup_steps=3", *FINE_TUNING,
                    "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "++trainer.limit_val_batches=1",
                    "logger=csv", "callbacks=learning_rate_monitor",
                    "+callbacks.learning_rate_monitor.log_weight_decay=true", "test=false"])
    train(cfg)
    logged = learning_rates(Path(cfg.paths.output_dir))
    for group in ["encoder", "encoder_no_decay", "decoder", "decoder_no_decay"]:
        lrs = logged[f"lr-AdamW/{group}"]
        base = BASE_LR * (0.1 if group.startswith("encoder") else 1)
        assert len(lrs) == 8
        assert lrs[0] == pytest.approx(base / 3)  # step 0
        assert lrs[2] == pytest.approx(base)  # the end of the warmup
        assert lrs[7] == pytest.approx(base * DECAY_AT_LAST_STEP[schedule])  # the last step
        decay = logged[f"lr-AdamW/{group}-weight_decay"]
        assert set(decay) == {0.0 if group.endswith("no_decay") else WEIGHT_DECAY}


def test_a_warmup_schedule_keeps_its_length_for_resume_checks(make_cfg):
    module = instantiate(make_cfg(["model/scheduler=poly", "model.scheduler.warmup_steps=2"]).model)
    optimizer = make_optimizer(module.optimizer_factory, parameter_groups(module))
    scheduler = module.scheduler_factory(optimizer, total_steps=10)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    restored = module.scheduler_factory(optimizer, total_steps=10)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.get_last_lr() == scheduler.get_last_lr() and restored.total_steps == 10
    module.schedule_steps, module._resumed_schedule_steps = 10, 20
    with pytest.raises(SemsegError, match="schedule spans 20 steps, this run's 10"):
        module._refuse_another_schedule(scheduler)
    with pytest.raises(SemsegError, match="warmup_steps=2 must be shorter than this run's 2 training steps"):
        module.scheduler_factory(torch.optim.SGD(module.parameters(), lr=0.1), total_steps=2)
