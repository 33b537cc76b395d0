"""data=labelme: labelme's JSON files (images beside them, elsewhere, or embedded), read from disk."""

import base64
import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from semseg.data.io import read_image
from semseg.data.labelme import LabelmeDataset
from semseg.errors import SemsegError
from semseg.train import train
from semseg.utils.config import instantiate
from tests.helpers.annotation_files import (
    FLAT_LABELME,
    LABELME_CLASSES,
    image_bytes,
    make_flat_labelme,
    make_labelme,
    mask_shape,
    shape,
    tree_listing,
    write_json,
)
from tests.helpers.cli import PYTHON, run_cli

CLASSES = f"data.class_names=[{','.join(LABELME_CLASSES)}]"


@pytest.fixture(scope="module")
def labelme_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports") / "labelme"
    return root, make_labelme(root)


@pytest.fixture
def labelme_copy(labelme_tree, tmp_path):
    return shutil.copytree(labelme_tree[0], tmp_path / "labelme")


def dataset(root, cache, split="train", class_names=LABELME_CLASSES, **settings) -> LabelmeDataset:
    return LabelmeDataset(root, split, class_names, cache, **settings)


def edit(path, change) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def test_every_shape_type_is_drawn_as_labelme_fills_it(labelme_tree, tmp_path):
    root, expected = labelme_tree
    for split in ("train", "val"):
        data = dataset(root, tmp_path / "cache", split)
        assert data.names == sorted(expected[split]), "relative paths without .json, subfolders too"
        for index, name in enumerate(data.names):
            image, mask = data.load(index)
            assert image.shape == (*expected[split][name].shape, 3)
            assert np.array_equal(mask, expected[split][name]), name
    train_set = dataset(root, tmp_path / "cache")
    embedded = train_set.image_paths[train_set.names.index("0002")]
    assert embedded.is_relative_to(tmp_path / "cache" / "labelme_images"), "imageData is extracted into the cache"
    original = np.array(Image.open(io.BytesIO(image_bytes(44, 30, "L", 12))).convert("RGB"))
    assert np.array_equal(read_image(embedded), original)
    assert train_set.image_paths[train_set.names.index("nested/0003")] == root / "images" / "0003.png"


@pytest.mark.parametrize(
    ("class_names", "table"),
    [(["cat", "dog"], {0: 255, 1: 0, 2: 1}),  # no background class: unlabelled pixels are ignored
     (["dog", "background", "cat"], {0: 1, 1: 2, 2: 0})],  # `background` serves as well as `_background_`
    ids=["no-background", "background"],
)
def test_background_and_ignore_follow_the_class_list(labelme_tree, tmp_path, class_names, table):
    root, expected = labelme_tree
    data = dataset(root, tmp_path / "cache", class_names=class_names)
    lookup = np.array([table.get(value, value) for value in range(256)], dtype=np.uint8)
    for index, name in enumerate(data.names):
        mask = data.load(index)[1]
        assert np.array_equal(mask, lookup[expected["train"][name]]), name
    assert (data.load(data.names.index("street/0001"))[1][30:39, 40:47] == 255).all(), "__ignore__ is 255"


def replace_shapes(*shapes):
    return lambda content: content.update(shapes=list(shapes))


STREET = "train/street/0001.json"


@pytest.mark.parametrize(
    ("path", "change", "message"),
    [
        (STREET, replace_shapes(shape("cat", "ellipse", [[1, 1], [5, 5]])),
         r"street/0001.json: shape 0 has shape_type 'ellipse', which semseg cannot draw; the types are polygon, rectangle"),
        (STREET, replace_shapes(shape("cat", "polygon", [[1, 1], [5, 5]])),
         r"street/0001.json: shape 0: a polygon needs at least 3 points, it has 2"),
        (STREET, replace_shapes(shape("cat", "polygon", [[1, 1], [5, "x"], [3, 3]])),
         r"street/0001.json: shape 0: the coordinate 'x' is not a number"),
        (STREET, replace_shapes(shape("cat", "polygon", [[1, 1], [5, 1e9], [3, 3]])),
         r"street/0001.json: shape 0: the coordinate 1000000000.0 lies far outside the 48x40 image"),
        (STREET, replace_shapes(shape("cat", "rectangle", [[1, 1], [5, 5]]), shape("horse", "polygon", [[1, 1], [5, 1], [3, 3]])),
         r"labels \['horse'\] of split 'train' \(e.g. in .*street/0001.json\) are not in data.class_names "
         r"\['_background_', 'cat', 'dog'\]; the labels found are \['cat', 'dog', 'horse'\]"),
        (STREET, replace_shapes(mask_shape("cat", 40, 35, np.ones((8, 12), bool))),
         r"street/0001.json: shape 0: the mask's box 40,35..51,42 is not inside the 48x40 image"),
        (STREET, lambda content: content.update(imageHeight=41),
         r"image .*street/0001.jpg is 48x40 but .*street/0001.json \(imageWidth, imageHeight\) says it is 48x41"),
        (STREET, lambda content: content.update(imageWidth=-3),
         r"street/0001.json \(imageWidth, imageHeight\): width=-3, height=40 must be positive integers"),
        (STREET, lambda content: content.update(imagePath="elsewhere.jpg"),
         r"1 labelme file\(s\) of split 'train' have no image: .*street/0001.json \(.*street/elsewhere.jpg\). Their imagePath"),
        ("train/0002.json", lambda content: content.update(imageData="!!!notbase64"),
         r"0002.json: its imageData is not a base64 image"),
    ],
    ids=["unknown-shape", "two-point-polygon", "text-coordinate", "far-coordinate", "unknown-label", "mask-outside",
         "size-differs", "negative-width", "missing-image", "bad-image-data"],
)
def test_bad_files_are_named_with_the_fix(labelme_copy, tmp_path, path, change, message):
    edit(labelme_copy / path, change)
    with pytest.raises(SemsegError, match=message):
        dataset(labelme_copy, tmp_path / "cache")


def test_malformed_and_foreign_json_and_empty_folders_are_named(labelme_copy, tmp_path):
    (labelme_copy / STREET).write_text('{"shapes": [')
    with pytest.raises(SemsegError, match=r"street/0001.json is not valid JSON \(Expecting value at line 1, column 13\)"):
        dataset(labelme_copy, tmp_path)
    write_json(labelme_copy / STREET, {"images": [], "annotations": []})
    with pytest.raises(SemsegError, match=r"street/0001.json is not a labelme file: it has no 'shapes' list"):
        dataset(labelme_copy, tmp_path)
    with pytest.raises(SemsegError, match=r"data.image_dir=\{split\} gives .*labelme/test for split 'test', which does not "
                                          r"exist; folders in .*labelme: \['images', 'train', 'val'\]"):
        dataset(labelme_copy, tmp_path, "test")
    with pytest.raises(SemsegError, match=r"split 'images' has no labelme files: nothing matches .*images/\*\*/\*.json"):
        dataset(labelme_copy, tmp_path, "images")
    with pytest.raises(SemsegError, match=r"data.class_names lists __ignore__, labelme's label for pixels to ignore"):
        dataset(labelme_copy, tmp_path, "val", class_names=["cat", "__ignore__"])


def test_masks_are_built_once_and_again_for_a_changed_file_or_class_list(labelme_copy, tmp_path):
    cache = tmp_path / "cache"
    first = dataset(labelme_copy, cache)
    built = {path: stat for path, stat in tree_listing(cache).items() if path.endswith(".png")}
    assert len(built) == 4 + 1, "a mask per file, and the embedded image"
    again = dataset(labelme_copy, cache)
    assert again.mask_paths == first.mask_paths and tree_listing(cache).items() >= built.items(), "reused, not rewritten"
    assert len(list(cache.rglob("*.png"))) == 5
    edit(labelme_copy / "train/0004.json", lambda content: content["shapes"][0].update(label="cat"))
    changed = dataset(labelme_copy, cache)
    moved = [name for name, a, b in zip(first.names, first.mask_paths, changed.mask_paths) if a != b]
    assert moved == ["0004"], "only the edited file gets a new mask"
    assert set(np.unique(changed.read_mask(changed.mask_paths[first.names.index("0004")]))) == {0, 1}
    other = dataset(labelme_copy, cache, class_names=["background", "cat", "dog"])
    assert not set(other.mask_paths) & set(changed.mask_paths), "another class list builds its own masks"
    assert tree_listing(cache).items() >= built.items(), "earlier masks untouched"


def test_embedded_jpeg_with_exif_orientation_is_extracted_upright(labelme_copy, tmp_path):
    """labelme shows and annotates images upright; the extracted PNG is upright too."""
    stored = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)  # 30 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees: 20 wide, 30 high
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    write_json(labelme_copy / "val" / "phone.json", {"shapes": [shape("cat", "rectangle", [[0, 0], [4, 29]])], "imagePath": None,
               "imageData": base64.b64encode(buffer.getvalue()).decode(), "imageHeight": 30, "imageWidth": 20})
    data = dataset(labelme_copy, tmp_path / "cache", "val")
    image, mask = data.load(data.names.index("phone"))
    assert image.shape == (30, 20, 3) and (mask[:, :5] == 1).all() and (mask[:, 5:] == 0).all()


def test_trains_and_writes_nothing_beside_the_data(make_cfg, labelme_tree, data_dir):
    root = labelme_tree[0]
    before = tree_listing(root)
    cfg = make_cfg(["data=labelme", f"data.root={root}", CLASSES, "model=fcn8s", "trainer.max_epochs=1",
                    "model/scheduler=constant", "logger=csv", "callbacks=model_checkpoint", "data.crop_size=[32,32]",
                    "data.batch_size=2"])
    assert cfg.data.num_classes == 3
    metrics = train(cfg)
    assert 0 <= metrics["test/mIoU"] <= 1 and "test/IoU/dog" in metrics
    assert tree_listing(root) == before, "nothing written under data.root"
    assert len(list((data_dir / ".cache" / "labelme_masks").rglob("*.png"))) >= 6


def test_inspect_reads_the_masks(labelme_tree, tmp_path):
    result = run_cli([PYTHON, "-m", "semseg.data.inspect", "data=labelme", f"data.root={labelme_tree[0]}", CLASSES,
                      f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}", "data.num_workers=0",
                      f"output={tmp_path / 'out'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "split 'train': 4 images" in result.stdout and "split 'val': 2 images" in result.stdout
    rows = [line.split(",") for line in (tmp_path / "out/classes.csv").read_text().splitlines()[1:]]
    pixels = {(split, name): int(count) for split, value, name, count, share, images in rows}
    assert pixels[("val", "cat")] == 32 * 16 and pixels[("val", "_background_")] == 32 * 16 + 40 * 28
    assert pixels[("train", "ignore")] == 7 * 9, "the __ignore__ polygon"


def test_a_cache_that_cannot_be_written_is_named(labelme_tree, tmp_path):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(SemsegError, match=r"cannot write the masks into the cache .*cache/labelme_\w+/\w+: .* set data.cache_dir"):
        dataset(labelme_tree[0], blocked)


# ---- one folder of files, no splits --------------------------------------------------------------

THIRDS = {"train": 0.67, "val": 0.33}
TINY = ["trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=1", "data.batch_size=2", "data.crop_size=[32,32]", "model=fcn8s",
        "logger=csv", "callbacks=none"]


@pytest.fixture(scope="module")
def flat_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports") / "labelme-flat"
    return root, make_flat_labelme(root)


def hash_thirds(names) -> dict[str, list[str]]:
    """The split stated independently: names by SHA-256 of "0:<name>", round(6 x 0.67) = 4 train."""
    order = sorted(names, key=lambda name: hashlib.sha256(f"0:{name}".encode()).hexdigest())
    return {"train": sorted(order[:4]), "val": sorted(order[4:])}


def test_one_flat_folder_is_split_by_fractions_with_exact_masks(flat_tree, tmp_path):
    root, expected = flat_tree
    datasets = {split: dataset(root, tmp_path / "cache", split, image_dir=".", split_fractions=THIRDS) for split in THIRDS}
    assert {split: data.names for split, data in datasets.items()} == hash_thirds(FLAT_LABELME)
    assert datasets["val"].split_lists == hash_thirds(FLAT_LABELME)
    for data in datasets.values():
        for index, name in enumerate(data.names):
            assert data.image_paths[index] == root / f"{name}.jpg"
            assert np.array_equal(data.load(index)[1], expected[name]), "points and point are skipped"
    again = dataset(root, tmp_path / "other", "val", image_dir=".", split_fractions=THIRDS)
    assert again.names == datasets["val"].names, "the same split every time"
    other_seed = dataset(root, tmp_path / "cache", "val", image_dir=".", split_fractions=THIRDS, split_seed=3)
    assert sorted(other_seed.names + dataset(root, tmp_path / "cache", "train", image_dir=".", split_fractions=THIRDS,
                                             split_seed=3).names) == FLAT_LABELME


def test_a_flat_folder_trains_and_writes_its_lists_to_the_run_folder_only(make_cfg, flat_tree, tmp_path):
    root = flat_tree[0]
    before = tree_listing(root)
    overrides = ["data=labelme", f"data.root={root}", CLASSES, "data.image_dir=.", "data.split_fractions={train:0.67,val:0.33}"]
    metrics = train(make_cfg([*overrides, *TINY]))
    assert np.isfinite(metrics["train/loss"]) and "test/IoU/dog" in metrics
    written = {split: (tmp_path / "run/splits" / f"{split}.txt").read_text().split() for split in THIRDS}
    assert written == hash_thirds(FLAT_LABELME)
    assert tree_listing(root) == before, "nothing written under data.root"


def test_split_files_name_labelme_files_with_or_without_json(flat_tree, tmp_path):
    root = shutil.copytree(flat_tree[0], tmp_path / "flat")
    (root / "train.txt").write_text("IMG_0001.json\nIMG_0002\nIMG_0003.jpg\n")
    (root / "val.txt").write_text("IMG_0006\n")
    files = {"train": "train.txt", "val": "val.txt"}
    assert dataset(root, tmp_path / "cache", image_dir=".", split_files=files).names == ["IMG_0001", "IMG_0002", "IMG_0003"]
    assert dataset(root, tmp_path / "cache", "val", image_dir=".", split_files=files).names == ["IMG_0006"]
    (root / "val.txt").write_text("IMG_0009.json\n")
    with pytest.raises(SemsegError, match=r"1 name\(s\) in .*val.txt have no image in .*flat: IMG_0009.json"):
        dataset(root, tmp_path / "cache", "val", image_dir=".", split_files=files)


@pytest.mark.parametrize(
    ("settings", "message"),
    [(dict(image_dir="{split}"), r"data.split_fractions splits one folder, but data.image_dir=\{split\} has a folder per "
                                 r"split; set data.image_dir to the one folder, e.g. data.image_dir=\."),
     (dict(split_fractions={"train": 0.8, "val": 0.3}), r"sums to 1.1; the fractions must sum to 1"),
     (dict(split_fractions={"a": 0.5, "b": 0.5}), r"split 'train' is not one of data.split_fractions \['a', 'b'\]"),
     (dict(split_files={"train": "t.txt"}), r"are both set; keep one"),
     (dict(split_fractions={"train": 0.95, "val": 0.05}), r"gives split 'val' no items of the 6 found")],
    ids=["template", "sum", "unknown-split", "both", "empty-split"],
)
def test_split_mistakes_are_one_line_as_for_folders(flat_tree, tmp_path, settings, message):
    with pytest.raises(SemsegError, match=message):
        dataset(flat_tree[0], tmp_path, **(dict(image_dir=".", split_fractions=THIRDS) | settings))


def test_stages_take_candidates_and_must_read_splits_of_the_fractions(make_cfg, flat_tree, labelme_tree):
    cfg = make_cfg(["data=labelme", f"data.root={labelme_tree[0]}", CLASSES, "data.splits.test=[test,val]"])
    assert instantiate(cfg.data).splits == {"train": "train", "val": "val", "test": "val"}, "no test folder: val"
    cfg = make_cfg(["data=labelme", f"data.root={flat_tree[0]}", CLASSES, "data.image_dir=.",
                    "data.split_fractions={train:0.67,validation:0.33}"])
    with pytest.raises(SemsegError, match=r"data.splits.val=val is not one of the splits of data.split_fractions"):
        instantiate(cfg.data)


def test_every_shape_type_labelme_5_writes_is_drawn_skipped_or_named(labelme_copy, tmp_path):
    edit(labelme_copy / STREET, replace_shapes(shape("cat", "ai_polygon", [[1, 1], [5, 5], [1, 5]])))
    with pytest.raises(SemsegError, match=r"shape_type 'ai_polygon', which semseg cannot draw; the types are polygon, "
                                          r"rectangle, circle, line, linestrip, mask, point, points \(points are skipped\)"):
        dataset(labelme_copy, tmp_path / "cache")
