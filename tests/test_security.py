"""Crafted checkpoints and ONNX files: refused by every entry point, with nothing touched or created.

Each crafted `.ckpt` loads cleanly with `weights_only=True`; what it tries is in the model config
it stores, which eval, predict, export and a resume would otherwise build with Hydra.
"""

import builtins
import json
import sys
import warnings
from pathlib import Path

import onnx
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from semseg.checkpoints.__main__ import main as inspect_main
from semseg.checkpoints.allowlist import buildable_targets, targets_in
from semseg.checkpoints.reading import load_model, read_checkpoint
from semseg.errors import SemsegError
from semseg.eval import evaluate
from semseg.export import export
from semseg.onnx_net import OnnxNet
from semseg.predict import predict
from semseg.train import train
from semseg.utils.config import compose_config
from tests.helpers.cli import PYTHON, run_cli
from tests.helpers.settings import REPO, SHORT_RUN


class Payload:
    """Unpickling this creates the file `marker` (what a pickle-borne attack would do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture
def victim(tmp_path) -> dict:
    """A user's file (the canary), a pickle payload beside it, a module that acts when imported,
    and the file the payloads would create."""
    home = tmp_path / "home"
    home.mkdir()
    canary = home / "thesis.txt"
    canary.write_text("four years of work")
    marker = home / "pwned"
    torch.save(Payload(marker), home / "payload.pt")
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nCLASS_NAMES = ['a']\nThing = dict\n")
    return {"home": home, "canary": canary, "marker": marker, "payload": home / "payload.pt"}


def attacks(victim: dict) -> dict:
    """Each route from a stored config to a user's files or shell, as a function of the real config."""
    opener = {"_target_": "builtins.open", "file": str(victim["canary"]), "mode": "w"}
    loader = {"_target_": "torch.load", "f": str(victim["payload"]), "weights_only": False}
    return {
        "open": lambda config: opener,
        "torch_load": lambda config: loader,
        "in_encoder": lambda config: {**config, "net": {**config["net"], "encoder": opener}},
        "in_a_list": lambda config: {**config, "net": {**config["net"], "decoder": {**config["net"]["decoder"], "_args_": [loader]}}},
        "optimizer_partial": lambda config: {**config, "optimizer": {**opener, "_partial_": True}},
        "non_string_target": lambda config: {**config, "net": {**config["net"], "_target_": ["builtins.open"]}},
        "module_beside_it": lambda config: {**config, "loss": {"_target_": "evil_module.Thing"}},
        "interpolation": lambda config: {**config, "class_names": "${class_names_of:evil_module}"},
    }


def craft(checkpoint: Path, folder: Path, name: str, change) -> Path:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved["semseg"]["model_config"] = change(saved["semseg"]["model_config"])
    path = folder / f"{name}.ckpt"
    torch.save(saved, path)
    torch.load(path, weights_only=True)  # a clean load: the attack is only in the config
    return path


def untouched(victim: dict) -> bool:
    files = sorted(p.name for p in victim["home"].iterdir())
    return victim["canary"].read_text() == "four years of work" and files == ["payload.pt", "thesis.txt"]


@pytest.fixture
def crafted(checkpoint, victim, tmp_path) -> dict:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return {name: craft(checkpoint, folder, name, change) for name, change in attacks(victim).items()}


def test_every_stored_target_semseg_writes_is_on_the_allowlist(checkpoint):
    config = torch.load(checkpoint, weights_only=True)["semseg"]["model_config"]
    assert targets_in(config) <= buildable_targets()
    assert {"semseg.models.encoders.TimmEncoder", "semseg.models.decoders.unet.UNetDecoder", "torch.optim.AdamW",
            "segmentation_models_pytorch.losses.DiceLoss", "semseg.models.schedulers.poly"} <= buildable_targets()
    assert not {"builtins.open", "torch.load", "os.system"} & buildable_targets()


def test_crafted_checkpoints_are_refused_before_anything_is_built(crafted, victim, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # where `evil_module.py` would be importable
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, path in crafted.items():
        with pytest.raises(SemsegError) as refused:
            load_model(path)
        message = str(refused.value)
        assert str(path) in message and "model_config" in message, name
        assert untouched(victim), name
    assert "evil_module" not in sys.modules


@pytest.fixture
def entry_cfg(tmp_path, data_dir, victim):
    """Compose each entry point's config for a checkpoint, the images and output under tmp_path."""
    Image.new("RGB", (20, 24)).save(tmp_path / "photo.png")

    def make(task: str, ckpt: Path):
        common = [f"ckpt_path={ckpt}", f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={data_dir}"]
        extra = {
            "eval": ["data.num_workers=0", "logger=none"],
            "predict": [f"input={tmp_path / 'photo.png'}", f"output={tmp_path / 'masks'}"],
            "export": [f"output={tmp_path / 'model.onnx'}"],
            "train": ["data.num_workers=0", "logger=none", "model=fcn8s", *SHORT_RUN],
        }[task]
        return compose_config(f"{task}.yaml", common + extra, tmp_path / task)

    yield make
    GlobalHydra.instance().clear()


RUNNERS = {"eval": evaluate, "predict": predict, "export": export, "train": train}


@pytest.mark.parametrize("task", sorted(RUNNERS))
def test_every_entry_point_refuses_every_crafted_checkpoint(task, entry_cfg, crafted, victim, tmp_path):
    for name, path in crafted.items():
        with pytest.raises(SemsegError, match="model_config"):
            RUNNERS[task](entry_cfg(task, path))
        assert untouched(victim), (task, name)
    assert not (tmp_path / "model.onnx").exists() and not (tmp_path / "masks").exists()


@pytest.mark.parametrize("task", sorted(RUNNERS))
def test_on_the_command_line_a_crafted_checkpoint_is_one_line(task, crafted, victim, data_dir, tmp_path):
    """The reported routes as a user meets them (every route and entry point is tried in-process above)."""
    Image.new("RGB", (20, 24)).save(tmp_path / "photo.png")
    extra = {
        "eval": ["data.num_workers=0", "logger=none"],
        "predict": [f"input={tmp_path / 'photo.png'}", f"output={tmp_path / 'masks'}"],
        "export": [f"output={tmp_path / 'model.onnx'}"],
        "train": ["logger=none", "model=fcn8s"],
    }[task]
    for name in ("torch_load" if task in ("export", "train") else "open",):
        result = run_cli([PYTHON, "-m", f"semseg.{task}", f"ckpt_path={crafted[name]}", f"paths.log_dir={tmp_path / 'logs'}",
                          f"paths.data_dir={data_dir}", *extra], cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert lines[-1].startswith("semseg: error: ") and "is none of semseg's building blocks" in lines[-1]
        assert untouched(victim), (task, name)


def test_a_target_the_user_trusts_is_built(checkpoint, tmp_path):
    """trusted_targets is for classes of one's own; here a torch loss stands in for one."""
    path = craft(checkpoint, tmp_path, "own_loss", lambda c: {**c, "loss": {"_target_": "torch.nn.CrossEntropyLoss", "ignore_index": 255}})
    with pytest.raises(SemsegError, match=r"add trusted_targets=\[torch.nn.CrossEntropyLoss\]"):
        read_checkpoint(path)
    model, _ = load_model(path, trusted_targets=["torch.nn.CrossEntropyLoss"])
    assert isinstance(model.loss, torch.nn.CrossEntropyLoss)


def test_a_checkpoint_rebuilds_without_the_weights_file_it_started_from(checkpoint, tmp_path):
    """Its start weights are replaced by its own: neither the hub nor that file is needed."""
    change = lambda c: {**c, "net": {**c["net"], "encoder": {**c["net"]["encoder"], "pretrained": str(tmp_path / "gone.pth")}}}
    model, _ = load_model(craft(checkpoint, tmp_path, "moved", change))
    reference, _ = load_model(checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


BAD_DESCRIPTIONS = {
    "class_names": (lambda m: {**m, "class_names": "abc"}, "class_names must be a list"),
    "mean": (lambda m: {**m, "mean": [0.5, 0.5]}, "mean must be 3 numbers"),
    "std": (lambda m: {**m, "std": [0.2, 0.0, 0.2]}, "std must be positive"),
    "palette": (lambda m: {**m, "palette": [[0, 0, 999]]}, "palette must be a list"),
    "wandb_id": (lambda m: {**m, "wandb_id": "../../../etc"}, "wandb_id must be a W&B run id"),
    "format": (lambda m: {**m, "format": "3"}, "is not a version number"),
}


@pytest.mark.parametrize("case", sorted(BAD_DESCRIPTIONS))
def test_a_checkpoints_data_description_is_checked(checkpoint, tmp_path, case):
    change, message = BAD_DESCRIPTIONS[case]
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved["semseg"] = change(saved["semseg"])
    torch.save(saved, tmp_path / "odd.ckpt")
    with pytest.raises(SemsegError, match=message):
        read_checkpoint(tmp_path / "odd.ckpt")


def onnx_file(path: Path, metadata: str | None) -> Path:
    """A real (B, 3, H, W) -> (B, 2, H, W) graph with the given `semseg` metadata text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 8, 8),), str(path), input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": {0: "b", 2: "h", 3: "w"}}, dynamo=False)
    if metadata is not None:
        graph = onnx.load(str(path))
        onnx.helper.set_model_props(graph, {"semseg": metadata})
        onnx.save(graph, str(path))
    return path


GOOD = {"version": 1, "class_names": ["a", "b"], "num_classes": 2, "mean": [0.5] * 3, "std": [0.2] * 3,
        "palette": [[0, 0, 0], [255, 0, 0]], "output_stride": 1}
BAD_METADATA = {
    "not_json": ("{class_names: [a", "is not valid JSON"),
    "a_list": ("[1, 2]", "not an object"),
    "deep": ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),
    "huge": (json.dumps({**GOOD, "pad": "x" * 2_000_000}), "more than semseg writes"),
    "num_classes": (json.dumps({**GOOD, "num_classes": 3}), "does not match its 2 class_names"),
    "num_classes_text": (json.dumps({**GOOD, "num_classes": "2"}), "does not match"),
    "mean_length": (json.dumps({**GOOD, "mean": [0.5]}), "mean must be 3 numbers"),
    "std_zero": (json.dumps({**GOOD, "std": [0.2, 0, 0.2]}), "std must be positive"),
    "std_nan": (json.dumps({**GOOD, "std": [float("nan")] * 3}), "std must be 3 numbers"),
    "palette": (json.dumps({**GOOD, "palette": [[1, 2]]}), "palette must be"),
    "names": (json.dumps({**GOOD, "class_names": [1, 2]}), "class_names must be names"),
    "stride": (json.dumps({**GOOD, "output_stride": -4}), "output_stride must be"),
    "version": (json.dumps({**GOOD, "version": "1"}), "is not a number"),
}


def test_a_well_formed_onnx_description_is_read(tmp_path):
    net = OnnxNet(onnx_file(tmp_path / "ok.onnx", json.dumps(GOOD)))
    assert net.num_classes == 2 and net(torch.zeros(1, 3, 5, 7)).shape == (1, 2, 5, 7)


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_hostile_onnx_metadata_is_one_clear_error(tmp_path, case):
    text, message = BAD_METADATA[case]
    path = onnx_file(tmp_path / f"{case}.onnx", text)
    with pytest.raises(SemsegError, match=message) as refused:
        OnnxNet(path)
    assert str(path) in str(refused.value)


def test_hostile_onnx_metadata_on_the_command_line(tmp_path):
    path = onnx_file(tmp_path / "odd.onnx", json.dumps({**GOOD, "mean": [0.5, 0.5]}))
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    result = run_cli([PYTHON, "-m", "semseg.predict", f"ckpt_path={path}", f"input={tmp_path / 'photo.png'}",
                      f"output={tmp_path / 'out'}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"semseg: error: {path}: its stored mean must be 3 numbers")
    assert not (tmp_path / "out").exists()


def test_the_readmes_look_inside_command_on_a_real_and_a_crafted_checkpoint(checkpoint, crafted, victim, tmp_path, capsys):
    section = (REPO / "README.md").read_text().split("\n## Security", 1)[1].split("\n## ", 1)[0]
    (command,) = [line for line in section.splitlines() if line.startswith("python -m semseg.checkpoints")]
    program = command.split()[:3]
    shown = run_cli([PYTHON, *program[1:], str(checkpoint)], cwd=tmp_path)
    assert shown.returncode == 0 and "_target_: semseg.models.module.SegmentationModule" in shown.stdout
    assert "accepted: eval, predict and export" in shown.stdout
    assert inspect_main([str(crafted["in_encoder"])]) == 2
    assert "model_config.net.encoder._target_ names 'builtins.open'" in capsys.readouterr().err
    assert untouched(victim)


# ---- resuming a crafted checkpoint: the training state is data too ---------------------------------

RESUME = ["model=fcn8s", "model/scheduler=constant", "logger=csv", "callbacks=model_checkpoint", "test=false",
          "trainer.max_epochs=2"]


def resave(checkpoint: Path, path: Path, change) -> Path:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    change(saved)
    torch.save(saved, path)
    return path


def checkpoint_state(saved: dict) -> dict:
    (key,) = [key for key in saved["callbacks"] if key.startswith("ModelCheckpoint")]
    return saved["callbacks"][key]


def test_an_untouched_checkpoint_still_resumes(make_cfg, checkpoint, tmp_path):
    """The checks below refuse nothing semseg.train wrote: its own checkpoint resumes and trains on."""
    path = resave(checkpoint, tmp_path / "own.ckpt", lambda saved: None)
    metrics = train(make_cfg([*RESUME, f"ckpt_path={path}"]))
    assert metrics["val/mIoU"] >= 0 and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def crafted_states(run: Path, victim: dict) -> dict:
    """Callback, loop, RNG and optimizer states that would delete, copy or silently change things."""
    here = str(run / "checkpoints")

    def state(**entries):
        return lambda saved: checkpoint_state(saved).update(entries)

    def optimizer_lr(saved):
        for group in saved["optimizer_states"][0]["param_groups"]:
            group.update(lr=1e6, initial_lr=1e6, weight_decay=0.777)

    return {
        "delete_outside": state(dirpath=here, last_model_path=f"{here}/../../home/thesis.txt"),
        "delete_run_folder": state(last_model_path="/anything/.."),
        "copy_a_secret": state(best_k_models={str(victim["canary"]): torch.tensor(1e9)}, best_model_path=str(victim["canary"]),
                               kth_best_model_path=str(victim["canary"]), best_model_score=torch.tensor(1e9)),
        "state_is_a_list": lambda saved: saved["callbacks"].update({k: ["x"] for k in saved["callbacks"] if k.startswith("Model")}),
        "path_is_a_number": state(best_k_models={1: torch.tensor(0.0)}),
        "rng_of_another_shape": lambda saved: saved["callbacks"].update(
            RunState={"rng": {"python": (3, tuple(range(625)), None), "numpy": ("MT19937", torch.zeros(3), 0, 0, 0.0),
                              "torch": torch.zeros(3, dtype=torch.uint8)}}),
        "a_weight_missing": lambda saved: saved["state_dict"].pop(next(iter(saved["state_dict"]))),
        "loops_text": lambda saved: saved["loops"]["fit_loop"].update(epoch_progress="x"),
        "optimizer_settings": optimizer_lr,
    }


def test_crafted_training_state_is_refused_on_resume(make_cfg, checkpoint, victim, tmp_path):
    run = tmp_path / "run"
    messages = {}
    for name, change in crafted_states(run, victim).items():
        path = resave(checkpoint, tmp_path / f"{name}.ckpt", change)
        GlobalHydra.instance().clear()
        cfg = make_cfg([*RESUME, "callbacks=[model_checkpoint,run_state]", f"ckpt_path={path}"])
        with pytest.raises(SemsegError) as refused:
            train(cfg)
        messages[name] = str(refused.value)
        assert untouched(victim), name
        assert run.is_dir() and not (run / "checkpoints" / "thesis.txt").exists(), name
    assert "not a checkpoint file" in messages["delete_outside"] and "not a checkpoint file" in messages["delete_run_folder"]
    assert "not a checkpoint file" in messages["copy_a_secret"]
    assert "RNG states do not restore" in messages["rng_of_another_shape"]
    assert "weights do not fit this model" in messages["a_weight_missing"]
    assert "loop progress is not counters" in messages["loops_text"]
    assert "optimizer state differs from this config's" in messages["optimizer_settings"]


MODEL_CONFIG_TRICKS = {
    "args_number": lambda c: {**c, "_args_": 5},
    "partial_module": lambda c: {**c, "_partial_": True},
    "net_args": lambda c: {**c, "net": {**c["net"], "_args_": [1, 2, 3]}},
    "convert": lambda c: {**c, "_convert_": "bogus"},
    "dotted_key": lambda c: {**c, "net": {**c["net"], "a.b": 1}},
    "huge_class_count": lambda c: {**c, "net": {**c["net"], "num_classes": 10**12}},
    "timm_reads_a_file": lambda c: {**c, "net": {**c["net"], "encoder": {**c["net"]["encoder"], "checkpoint_path": "/etc/hostname"}}},
    "other_class_order": lambda c: {**c, "class_names": list(reversed(c["class_names"]))},
}


@pytest.mark.parametrize("trick", sorted(MODEL_CONFIG_TRICKS))
def test_model_config_tricks_are_one_line(checkpoint, tmp_path, trick):
    path = craft(checkpoint, tmp_path, trick, MODEL_CONFIG_TRICKS[trick])
    with pytest.raises(SemsegError, match=str(path)):
        load_model(path)
