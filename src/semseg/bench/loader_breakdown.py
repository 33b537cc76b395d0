"""Where a training batch's loading time goes: file decoding, augmentation, collation.

    python -m semseg.bench.loader_breakdown experiment=camvid data.root=../shared/data/camvid

Lightning's profiler sees only how long the training loop waits for the next batch; the work
itself happens in the loader workers. This times that work in one process with one torch and one
OpenCV thread, as a worker does: reading and checking each image and mask (`dataset.load`), the
train transforms on the result, and `pad_collate` on batches of `data.batch_size`. Takes the
overrides of `semseg.train`; builds no model.
"""

import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import torch
from hydra.errors import HydraException

from semseg.bench.timing import markdown_table
from semseg.data.datamodule import pad_collate
from semseg.errors import SemsegError
from semseg.utils.config import compose_config, instantiate


def measure(cfg, items: int = 64) -> dict[str, float]:
    """Median seconds per item of decoding and of augmenting, and per batch of collating."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    transform = dataset.transform
    decode, augment, samples = [], [], []
    for index in range(min(items, len(dataset))):
        started = time.perf_counter()
        image, mask = dataset.load(index)
        decoded = time.perf_counter()
        out = transform(image=image, mask=mask) if transform is not None else {"image": image, "mask": mask}
        augment.append(time.perf_counter() - decoded)
        decode.append(decoded - started)
        samples.append({"image": out["image"], "mask": out["mask"], "name": dataset.names[index]})
    batch = datamodule.per_process_batch_size
    collate = []
    for start in range(0, len(samples) - batch + 1, batch):
        started = time.perf_counter()
        pad_collate(samples[start : start + batch])
        collate.append(time.perf_counter() - started)
    return {"decode": statistics.median(decode), "augment": statistics.median(augment),
            "collate": statistics.median(collate) if collate else float("nan"), "batch_size": batch,
            "items": len(samples)}


def report(result: dict[str, float]) -> str:
    """A markdown table: per item, per batch, and the batch total one worker spends."""
    batch = result["batch_size"]
    per_batch = {key: result[key] * (1 if key == "collate" else batch) for key in ("decode", "augment", "collate")}
    total = sum(per_batch.values())
    rows = [[key, f"{result[key] * 1e3:.1f} ms" + (" a batch" if key == "collate" else " an item"),
             f"{per_batch[key] * 1e3:.0f} ms", f"{per_batch[key] / total:.0%}"] for key in per_batch]
    rows.append(["one batch in all", "", f"{total * 1e3:.0f} ms", "100%"])
    return markdown_table(["stage", "median", f"per batch of {batch}", "share"], rows) + (
        f"\n\nMedians over {result['items']} train items, one process, 1 torch and 1 OpenCV thread (as a loader worker).")


@contextlib.contextmanager
def one_thread_like_a_worker() -> Iterator[None]:
    """One torch and one OpenCV thread inside; the caller's counts again after, as later runs in
    the same process train with them (and float32 sums round differently with other counts)."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def main(argv: list[str]) -> int:
    try:
        with one_thread_like_a_worker(), tempfile.TemporaryDirectory() as tmp:
            cfg = compose_config("train.yaml", [f"paths.log_dir={tmp}", *argv], Path(tmp) / "run")
            print(report(measure(cfg)))
    except (SemsegError, HydraException) as error:
        print(f"semseg: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
