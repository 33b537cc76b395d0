"""The synthetic classes need spatial context: a per-pixel model cannot learn them.

Both models train for the same number of steps on the same data; the default U-Net must beat the
1×1-convolution baseline by a wide margin, and the baseline must stay near chance.
"""

from semseg.data.synthetic import generate
from semseg.train import train

CONTEXT_DATA = dict(image_size=64, num_train=192, num_val=32, num_test=8)


def test_per_pixel_model_stays_far_below_the_default_model(make_cfg, tmp_path):
    generate(tmp_path / "context" / "synthetic", seed=1, **CONTEXT_DATA)
    common = [
        f"paths.data_dir={tmp_path / 'context'}",
        "data.prepare.seed=1",
        *[f"data.prepare.{key}={value}" for key, value in CONTEXT_DATA.items()],
        "data.batch_size=16",
        "trainer.max_epochs=12",
        "test=false",
        "logger=none",
        "callbacks=none",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
    ]
    pixelwise = train(make_cfg([*common, "model=pixelwise"], output="pixelwise"))["val/mIoU"]
    unet = train(make_cfg([*common, "model=unet"], output="unet"))["val/mIoU"]
    print(f"val mIoU: per-pixel {pixelwise:.3f}, U-Net {unet:.3f}")
    assert pixelwise < 0.35
    assert unet > pixelwise + 0.3
