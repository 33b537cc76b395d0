"""Where the repository is, and the tiny synthetic dataset every quick run uses."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# small enough for seconds-long runs, big enough for two batches per split; square, landscape
# and portrait images in turn, as real datasets mix sizes (each split gets all three)
MIXED_SIZES = [[64, 64], [48, 80], [80, 56]]
TINY_DATA = dict(image_size=64, num_train=16, num_val=6, num_test=6, sizes=MIXED_SIZES)


def prepare_overrides(settings: dict) -> list[str]:
    """`data.prepare.<key>=<value>` overrides for generator settings (no spaces: make splits on them)."""
    return [f"data.prepare.{key}={value}".replace(" ", "") for key, value in settings.items()]


TINY_DATA_OVERRIDES = prepare_overrides(TINY_DATA)
SHORT_RUN = ["trainer.max_epochs=2", "trainer.log_every_n_steps=1", "model/scheduler=constant"]
