"""semseg.export to ONNX, checked with ONNX Runtime, and semseg.predict running the ONNX file."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from semseg.checkpoints.reading import load_model
from semseg.errors import SemsegError
from semseg.eval import evaluate
from semseg.export import check_against_pytorch, export, write_onnx
from semseg.predict import predict
from semseg.utils.config import compose_config, instantiate
from tests.helpers.cli import run_cli
from tests.helpers.settings import REPO


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    path = export(compose_config("export.yaml", [f"ckpt_path={checkpoint}", f"output={tmp / 'fcn8s.onnx'}"], tmp))
    GlobalHydra.instance().clear()
    return path


def test_the_onnx_file_has_dynamic_sizes_the_preprocessing_and_pytorchs_logits(exported, checkpoint):
    model, meta = load_model(checkpoint)
    stored = json.loads({p.key: p.value for p in onnx.load(str(exported)).metadata_props}["semseg"])
    assert stored["class_names"] == meta["class_names"] and stored["num_classes"] == 5
    assert stored["mean"] == pytest.approx(meta["mean"]) and stored["std"] == pytest.approx(meta["std"])
    assert stored["output_stride"] == 32
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (3, 3, 45, 203)]:  # other batch sizes and sizes than the export's
        images = torch.randn(*shape)
        with torch.no_grad():
            expected = model.net(images).numpy()
        logits = session.run(["logits"], {"images": images.numpy()})[0]
        assert logits.shape == expected.shape and np.abs(logits - expected).max() < 1e-4


@pytest.mark.parametrize("tiling", [[], ["inference=slide", "inference.crop_size=32", "inference.stride=24"]],
                         ids=["whole", "slide"])
def test_onnx_predict_gives_the_checkpoints_masks(exported, checkpoint, tmp_path, tiling):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(2)
    for name, size in [("wide.jpg", (45, 90)), ("tall.png", (100, 41))]:
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(photos / name)
    masks = {}
    for source in (checkpoint, exported):
        out = tmp_path / source.suffix[1:]
        GlobalHydra.instance().clear()
        predict(compose_config("predict.yaml", [f"ckpt_path={source}", f"input={photos}", f"output={out}", *tiling],
                               tmp_path / "run"))
        masks[source.suffix] = {p.name: np.array(Image.open(p)) for p in sorted(out.glob("*[!y].png"))}
    assert list(masks[".onnx"]) == ["tall.png", "wide.png"]
    for name, mask in masks[".ckpt"].items():
        assert np.array_equal(masks[".onnx"][name], mask), name


def test_export_refuses_what_it_cannot_use(checkpoint, tmp_path):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases = [
        ([f"ckpt_path={foreign}"], r"not one written by semseg.train"),
        ([f"ckpt_path={checkpoint}", f"output={blocker}/model.onnx"], r"cannot write to output=.*a_file/model.onnx"),
        ([f"ckpt_path={checkpoint}", f"output={tmp_path}/model.pt"], r"output=.*model.pt must be a .onnx file"),
    ]
    for overrides, message in cases:
        GlobalHydra.instance().clear()
        with pytest.raises(SemsegError, match=message):
            export(compose_config("export.yaml", overrides, tmp_path / "run"))
    # an export that fails its check leaves an existing file as it was, and no temporary
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"the last good export")
    GlobalHydra.instance().clear()
    with pytest.raises(SemsegError, match=r"differs from PyTorch by .* \(more than tolerance=-1.0\).*nothing was written"):
        export(compose_config("export.yaml", [f"ckpt_path={checkpoint}", f"output={existing}", "tolerance=-1.0"],
                              tmp_path / "run"))
    assert existing.read_bytes() == b"the last good export" and sorted(p.name for p in tmp_path.glob("*.onnx")) == ["model.onnx"]
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob(".*partial*"))


def test_predict_refuses_an_onnx_file_that_semseg_did_not_export(tmp_path):
    plain = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 8, 8),), str(plain), input_names=["images"],
                          output_names=["logits"], dynamo=False)
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    result = run_cli([sys.executable, "-m", "semseg.predict", f"ckpt_path={plain}", f"input={tmp_path / 'photo.png'}",
                      f"output={tmp_path / 'out'}", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "plain.onnx is an ONNX model, but not one written by semseg.export" in result.stderr.strip().splitlines()[-1]


def test_make_export_then_onnx_predict_on_the_command_line(checkpoint, tmp_path):
    venv = Path(sys.executable).parents[1]
    made = run_cli(["make", "-C", str(REPO), "-o", f"{venv}/.installed", f"VENV={venv}", "export",
                    f"ckpt_path={checkpoint}", f"output={tmp_path / 'model.onnx'}", f"paths.log_dir={tmp_path / 'logs'}"],
                   cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    Image.new("RGB", (50, 30), (90, 140, 200)).save(tmp_path / "sky.jpg")
    predicted = run_cli([sys.executable, "-m", "semseg.predict", f"ckpt_path={tmp_path / 'model.onnx'}",
                         f"input={tmp_path / 'sky.jpg'}", f"output={tmp_path / 'masks'}", f"paths.log_dir={tmp_path / 'logs'}"],
                        cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert Image.open(tmp_path / "masks" / "sky.png").size == (50, 30)


def test_eval_writes_a_full_report_that_agrees_with_test_miou(make_cfg, checkpoint):
    import csv

    skipped = make_cfg([f"ckpt_path={checkpoint}", "report.num_worst=0"], config_name="eval.yaml", output="eval0")
    evaluate(skipped)
    assert not list((Path(skipped.paths.output_dir) / "report" / "worst").glob("*.png"))
    cfg = make_cfg([f"ckpt_path={checkpoint}", "data.batch_size=4"], config_name="eval.yaml", output="eval")
    metrics = evaluate(cfg)
    report = Path(cfg.paths.output_dir) / "report"
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary) == {"mIoU", "mAcc", "aAcc", "fwIoU", "mDice"}
    assert summary["mIoU"] == pytest.approx(metrics["test/mIoU"], abs=1e-7)
    assert summary["aAcc"] == pytest.approx(metrics["test/pixel_acc"], abs=1e-7)
    with open(report / "confusion.csv") as file:
        rows = list(csv.reader(file))
    names = ["background", "stripes", "checkers", "dots", "crosshatch"]
    assert rows[0][1:] == names and [row[0] for row in rows[1:]] == names
    confusion = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    with open(report / "per_class.csv") as file:
        per_class = list(csv.DictReader(file))
    assert [row["class"] for row in per_class] == names
    for c, row in enumerate(per_class):
        union = confusion[c].sum() + confusion[:, c].sum() - confusion[c, c]
        assert int(row["pixels"]) == confusion[c].sum()
        if union:
            assert float(row["iou"]) == pytest.approx(confusion[c, c] / union)
            assert float(row["dice"]) == pytest.approx(2 * confusion[c, c] / (union + confusion[c, c]))
        else:
            assert np.isnan(float(row["iou"])) and np.isnan(float(row["dice"]))
    with open(report / "per_image.csv") as file:
        per_image = list(csv.DictReader(file))
    assert len(per_image) == 6 and sorted(float(r["mIoU"]) for r in per_image) == [float(r["mIoU"]) for r in per_image]
    worst = sorted((report / "worst").glob("*.png"))
    assert len(worst) == 6 and worst[0].name == f"01_{per_image[0]['image']}.png"


@pytest.mark.parametrize("model", ["deeplabv3plus", "upernet", "segformer"])
def test_the_new_models_export_to_a_file_that_takes_any_size(make_cfg, tmp_path, model):
    """Pooling to fixed grids (ASPP's image pool, UPerNet's 1, 2, 3, 6) must follow the input's size."""
    cfg = make_cfg([f"model={model}"])
    net = instantiate(cfg.model.net).eval()
    output = tmp_path / f"{model}.onnx"
    write_onnx(net, {"class_names": list(cfg.data.class_names)}, output, torch.randn(2, 3, 97, 131))
    for shape in [(2, 3, 97, 131), (1, 3, 64, 200), (1, 3, 230, 70)]:
        assert check_against_pytorch(net, output, torch.randn(*shape), tolerance=1e-4) <= 1e-4
