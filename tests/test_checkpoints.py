"""Resume and preemption: real runs, a real SIGTERM, NaN losses, interrupted checkpoint writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semseg.utils import atomic
from semseg.utils.atomic import AtomicCheckpointIO
from semseg.errors import SemsegError
from semseg.train import train
from tests.helpers.settings import REPO, TINY_DATA_OVERRIDES

# 16 training images in batches of 4: 4 steps an epoch; the FCN head's dropout draws from the RNG
RUN = ["model=fcn8s", "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "data.num_workers=0",
       "data.batch_size=4"]


def wandb_run_id(run_dir: Path) -> str:
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    return offline_run.name.rsplit("-", 1)[1]


def test_runs_stopped_by_sigterm_or_nan_resume_to_exactly_the_uninterrupted_metrics(make_cfg, tmp_path, data_dir):
    # a real SIGTERM as step 6 starts (epoch 1, batch 2), in a separate process, as a scheduler sends it
    interrupted = subprocess.Popen(
        [sys.executable, "-m", "semseg.train", *RUN, *TINY_DATA_OVERRIDES, "extras.print_config=false",
         f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}",
         "+callbacks.signal._target_=tests.helpers.callbacks.SignalAt", "+callbacks.signal.step=6"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "WANDB_SILENT": "true", "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"},
    )
    # meanwhile: the uninterrupted run, and one whose batch at step 5 (epoch 1, batch 1) has a NaN loss
    reference = train(make_cfg([*RUN, "logger=csv"], output="reference"))
    poisoned = make_cfg([*RUN, "logger=csv", "+callbacks.poison._target_=tests.helpers.callbacks.PoisonBatch",
                         "+callbacks.poison.step=5"], output="poisoned")
    poisoned_dir = Path(poisoned.paths.output_dir)  # resolved now: it follows the latest composed config
    with pytest.raises(SemsegError, match=r"train/loss is nan at global step 5 \(epoch 1, batch 1\)"):
        train(poisoned)
    last = torch.load(poisoned_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4, "last.ckpt is still the end of epoch 0: nothing saved on the NaN"
    assert all(torch.isfinite(weight).all() for weight in last["state_dict"].values())

    output, _ = interrupted.communicate(timeout=600)
    assert interrupted.returncode == 143, output[-3000:]
    assert "interrupted at global step 7 (epoch 1)" in output
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 7 and not (run_dir / "metrics.json").exists()

    # mid-epoch: every metric equal, bit for bit (val/mIoU, test/mIoU, the last train/loss, ...)
    cfg = make_cfg([*RUN, "ckpt_path=last"], output="resumed")
    assert train(cfg) == reference
    assert wandb_run_id(Path(cfg.paths.output_dir)) == wandb_run_id(run_dir)
    # between epochs, from the last good checkpoint of the NaN run
    resumed = make_cfg([*RUN, "logger=csv", f"ckpt_path={poisoned_dir}"], output="resumed_nan")
    assert train(resumed) == reference


def test_resume_refuses_another_model_or_class_count(make_cfg, checkpoint, tmp_path):
    other_model = make_cfg(["model=unet", f"ckpt_path={checkpoint}"])
    with pytest.raises(SemsegError, match=r"cannot resume from .*best.ckpt.*different model config.*UNetDecoder"):
        train(other_model)
    fewer_classes = make_cfg(["model=fcn8s", "model/scheduler=constant", f"ckpt_path={checkpoint}",
                              "data.num_classes=3", "data.class_names=[a,b,c]"])
    with pytest.raises(SemsegError, match=r"net/num_classes: 5 in the checkpoint, 3 now"):
        train(fewer_classes)
    with pytest.raises(SemsegError, match=r"ckpt_path=last found no .*logs/train/runs/\*/checkpoints/last.ckpt"):
        train(make_cfg(["ckpt_path=last"]))


def test_a_failed_checkpoint_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    with pytest.raises(Exception):
        io.save_checkpoint({"step": lambda: 2}, path)  # fails while pickling, mid-write
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    """A write killed mid-way (SIGKILL: no clean-up runs) leaves `.last.ckpt.<pid>.<id>.tmp`."""
    script = (
        "import os, signal, torch; from semseg.utils.atomic import replaced_atomically\n"
        f"with replaced_atomically({str(tmp_path / 'last.ckpt')!r}) as file:\n"
        "    file.write(b'x' * 1000); file.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -9
    (orphan,) = tmp_path.glob(".last.ckpt.*.tmp")
    (tmp_path / ".notes.tmp").write_text("a user's file")  # not of our naming: never touched
    host = atomic._host()  # the name this machine writes into temporaries
    running = tmp_path / f".best.ckpt.{host}.{os.getpid()}.0123abcd.tmp"  # a write of a live process
    elsewhere = tmp_path / ".best.ckpt.other-node.999999.0123abcd.tmp"  # another machine's write
    elsewhere.write_bytes(b"")
    running.write_bytes(b"")
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(2)}, tmp_path / "last.ckpt")
    assert not orphan.exists() and running.exists() and elsewhere.exists() and (tmp_path / ".notes.tmp").exists()
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["step"] == 2


def test_last_ckpt_is_the_end_of_every_epoch_even_when_the_score_stops_improving(make_cfg):
    """The score never improves after epoch 0, so best.ckpt stays there; last.ckpt moves on."""
    cfg = make_cfg(["model=fcn8s", "trainer.max_epochs=3", "logger=csv", "callbacks=[model_checkpoint,run_state]", "test=false",
                    "+callbacks.fixed._target_=tests.helpers.callbacks.FixedScore"])
    train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert torch.load(folder / "best.ckpt", weights_only=True)["epoch"] == 0
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 4


def test_resuming_with_another_schedule_length_is_refused(make_cfg):
    first = make_cfg([*RUN, "trainer.max_epochs=1", "logger=csv", "callbacks=[model_checkpoint,run_state]", "test=false"], output="first")
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["semseg"]["schedule_steps"] == 4
    longer = make_cfg([*RUN, "trainer.max_epochs=3", "logger=csv", "callbacks=[model_checkpoint,run_state]", f"ckpt_path={last}"],
                      output="longer")
    with pytest.raises(SemsegError, match=r"cannot resume: the checkpoint's learning-rate schedule spans 4 steps, this "
                                          r"run's 12 \(trainer.max_epochs"):
        train(longer)
    assert not (Path(longer.paths.output_dir) / "checkpoints" / "last.ckpt").exists()


# checkpoints written in format 1 (before the net classes were renamed): tests/data/checkpoints/README.md
OLD_CHECKPOINTS = REPO / "tests" / "data" / "checkpoints"
OLD_RUNS = {
    "fcn8s": ["model=fcn8s", "+model.net.encoder.out_indices=[0,1,2]"],
    "patch_classifier": ["model=patch_classifier", "model.net.stages=[8]", "model.net.hidden=8"],
}


@pytest.mark.parametrize("name", sorted(OLD_RUNS))
def test_a_format_1_checkpoint_loads_with_todays_names(name):
    from semseg.checkpoints.reading import load_model
    from semseg.models.encoder_decoder import EncoderDecoder
    from semseg.models.patch_classifier import PatchClassifier

    model, meta = load_model(OLD_CHECKPOINTS / f"format1_{name}_epoch0.ckpt")
    assert meta["format"] == 3 and meta["model_config"]["loss"]["_target_"].endswith("CrossEntropy")
    assert isinstance(model.net, EncoderDecoder if name == "fcn8s" else PatchClassifier)
    if name == "patch_classifier":
        assert model.net.mode == "dense" and "inference" not in meta["model_config"]["net"]
    assert model(torch.zeros(1, 3, 40, 56)).shape == (1, 5, 40, 56)


@pytest.mark.parametrize("name", sorted(OLD_RUNS))
def test_a_format_1_checkpoint_resumes_exactly(make_cfg, name):
    """Resumed by today's code, the old run's second epoch ends where the old code's did."""
    import json

    cfg = make_cfg([*OLD_RUNS[name], "trainer.max_epochs=2", "logger=none", "callbacks=[model_checkpoint,run_state]",
                    "callbacks.model_checkpoint.monitor=null", "callbacks.model_checkpoint.filename=null",
                    "callbacks.model_checkpoint.save_top_k=-1",
                    f"ckpt_path={OLD_CHECKPOINTS / f'format1_{name}_epoch0.ckpt'}"])
    metrics = train(cfg)
    expected = json.loads((OLD_CHECKPOINTS / f"format1_{name}_metrics.json").read_text())
    # the same keys and values; float32 kernels of other CPUs may round a loss one ulp apart
    assert metrics == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_an_old_checkpoint_evaluates(make_cfg):
    from semseg.eval import evaluate

    cfg = make_cfg([f"ckpt_path={OLD_CHECKPOINTS / 'format1_fcn8s_epoch0.ckpt'}", "logger=none"],
                   config_name="eval.yaml")
    assert 0 <= evaluate(cfg)["test/mIoU"] <= 1


def test_the_resume_logic_does_not_import_the_models():
    """Callbacks import it; the models stay out of processes that only need checkpoints."""
    code = ("import sys, semseg.checkpoints.resume, semseg.utils.atomic, semseg.callbacks.preemption; "
            "print(sorted(m for m in sys.modules if m.startswith('semseg.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_setting_added_later_and_left_null_does_not_block_resuming(tmp_path):
    from semseg.checkpoints.resume import check_same_model

    trained = {"net": {"encoder": {"name": "resnet18"}}}
    check_same_model(tmp_path / "x.ckpt", trained, {"net": {"encoder": {"name": "resnet18", "output_stride": None}}})
    with pytest.raises(SemsegError, match=r"net/encoder/output_stride: \(not set\) in the checkpoint, 8 now"):
        check_same_model(tmp_path / "x.ckpt", trained, {"net": {"encoder": {"name": "resnet18", "output_stride": 8}}})
