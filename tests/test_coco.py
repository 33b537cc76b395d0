"""data=coco: COCO JSON as annotation tools export it, read from real files on disk."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf

from semseg.data.coco import CocoDataset, ImageFinder, coco_class_names
from semseg.data.io import read_image
from semseg.errors import SemsegError
from semseg.train import train
from semseg.utils.config import instantiate
from tests.helpers.annotation_files import (
    CVAT_NAMES,
    box_polygon,
    make_coco,
    make_cvat_export,
    make_label_studio_export,
    tree_listing,
    write_image,
    write_json,
)
from tests.helpers.cli import PYTHON, run_cli

ANNOTATIONS = {"train": "annotations/instances_train.json", "val": "annotations/instances_val.json"}
DEFAULT_CLASSES = ["background", "cat", "dog", "bird"]
LAYOUT = ["data=coco", 'data.image_dir="images/{split}"']  # quoted: {split} is Hydra dict syntax


@pytest.fixture(scope="module", autouse=True)
def coco_resolver():
    """`${coco_class_names:...}` in configs/data/coco.yaml; semseg.utils.resolvers registers it for
    the entry points (this registers it only where that has not happened)."""
    if not OmegaConf.has_resolver("coco_class_names"):
        OmegaConf.register_new_resolver("coco_class_names", coco_class_names)


@pytest.fixture(scope="module")
def coco_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports") / "coco"
    return root, make_coco(root)


@pytest.fixture
def coco_copy(coco_tree, tmp_path):
    return shutil.copytree(coco_tree[0], tmp_path / "coco")


def dataset(root, cache, split="train", **settings) -> CocoDataset:
    return CocoDataset(root, split, ANNOTATIONS, cache, image_dir="images/{split}", **settings)


def edit(root, split, change) -> None:
    path = root / ANNOTATIONS[split]
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def test_polygons_rle_and_crowd_regions_are_painted_in_file_order(coco_tree, tmp_path):
    root, expected = coco_tree
    for split in ("train", "val"):
        data = dataset(root, tmp_path / "cache", split)
        assert data.class_names == DEFAULT_CLASSES, "background, then the categories in id order"
        assert data.names == list(expected[split])
        for index, name in enumerate(data.names):
            image, mask = data.load(index)
            assert image.shape == (*expected[split][name].shape, 3), "grayscale and RGBA images become RGB"
            assert np.array_equal(mask, expected[split][name]), name
    assert np.array_equal(read_image(data.image_paths[0]), read_image(root / "images/val/e.png"))
    assert all(path.is_relative_to(tmp_path / "cache" / "coco_masks") for path in data.mask_paths)


@pytest.mark.parametrize(
    ("class_names", "table"),
    [(["dog", "cat"], {0: 255, 1: 1, 2: 0, 3: 255}),  # no background: unannotated pixels are ignored
     (["background", "bird"], {0: 0, 1: 255, 2: 255, 3: 1})],  # unlisted categories are ignored
    ids=["no-background", "some-categories"],
)
def test_class_names_pick_and_order_categories(coco_tree, tmp_path, class_names, table):
    root, expected = coco_tree
    data = dataset(root, tmp_path / "cache", class_names=class_names)
    lookup = np.array([table.get(value, value) for value in range(256)], dtype=np.uint8)
    for index, name in enumerate(data.names):
        # the last annotation over a pixel decides it whatever the classes, so the masks are the
        # default ones with the classes renumbered
        assert np.array_equal(data.load(index)[1], lookup[expected["train"][name]]), name


def test_a_class_that_is_no_category_is_refused_with_the_categories(coco_tree, tmp_path):
    with pytest.raises(SemsegError, match=r"data.class_names lists \['horse'\], which is no category of .*"
                                          r"instances_train.json; its categories are \['bird', 'cat', 'dog'\]"):
        dataset(coco_tree[0], tmp_path, class_names=["background", "horse", "cat"])
    with pytest.raises(SemsegError, match=r"data.class_names \w+ .*cat.* more than once"):
        dataset(coco_tree[0], tmp_path, class_names=["cat", "dog", "cat"])


def many_missing_images(content: dict) -> None:
    content["images"] += [{"id": 100 + n, "file_name": f"lost/{n}.jpg", "height": 8, "width": 8} for n in range(6)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: (root / ANNOTATIONS["train"]).write_text("[]"),
         r"instances_train.json holds a JSON list, not a COCO object with images, annotations and categories"),
        (lambda root: edit(root, "train", lambda c: c.pop("images")), r"instances_train.json has no 'images' list"),
        (lambda root: edit(root, "train", lambda c: c.pop("annotations")), r"instances_train.json has no 'annotations' list"),
        (lambda root: edit(root, "train", lambda c: c.update(categories={})), r"instances_train.json has a malformed 'categories'"),
        (lambda root: (root / ANNOTATIONS["train"]).write_text('{"images": [,]}'),
         r"instances_train.json is not valid JSON \(Expecting value at line 1, column 13\)"),
        (lambda root: [(root / "images/train" / name).unlink() for name in ("a.jpg", "c.png")],
         r"2 of the 4 images that .*instances_train.json lists do not exist: a.jpg, c.png. "
         r"A file_name is read relative to .*images/train \(data.image_dir=images/\{split\}\), then to the JSON's "
         r"folder .*annotations, then by its file name alone under .*images/train"),
        (lambda root: edit(root, "train", lambda c: c.update(images=[], annotations=[])),
         r"split 'train' has no images: .*instances_train.json lists none"),
        (lambda root: edit(root, "train", many_missing_images), r"6 of the 10 images .*: lost/0.jpg, .*, lost/4.jpg \(and 1 more\)"),
        (lambda root: edit(root, "train", lambda c: c["annotations"][0].update(segmentation=[[4, 4, 20, 4]])),
         r"instances_train.json: annotation 1 of image 'a.jpg': a polygon has 4 numbers; it needs x, y pairs of at least 3 points"),
        (lambda root: edit(root, "train", lambda c: c["annotations"][1]["segmentation"]["counts"].append(7)),
         r"annotation 2 of image 'a.jpg': the RLE counts must be non-negative run lengths adding up to .* 1280 pixels"),
        (lambda root: edit(root, "train", lambda c: c["annotations"][3]["segmentation"].update(counts="\x7f")),
         r"annotation 4 of image 'sub/b.png': the compressed RLE counts are broken"),
        (lambda root: edit(root, "train", lambda c: c["images"][0].update(width=0)),
         r"instances_train.json: image 10 \('a.jpg'\): width=0, height=32 must be positive integers"),
        (lambda root: edit(root, "train", lambda c: c["images"][0].update(width=2**16)),
         r"image 10 \('a.jpg'\): 65536x32 is larger than semseg reads"),
        (lambda root: edit(root, "train", lambda c: c["images"][0].update(width=41)),
         r"image .*images/train/a.jpg is 40x32 but .*instances_train.json says it is 41x32"),
        (lambda root: edit(root, "train", lambda c: c["annotations"][0].update(category_id=9)),
         r"instances_train.json: annotation 1 is of category_id 9, which is no category \(ids 1, 2, 3\)"),
        (lambda root: edit(root, "train", lambda c: c.update(categories=[{"id": n, "name": f"c{n}"} for n in range(1, 301)])),
         r"data.class_names has 301 \w+; .*at most 255"),
    ],
    ids=["not-a-dict", "no-images", "no-annotations", "bad-categories", "malformed", "no-images-listed", "missing-images",
         "many-missing-images", "two-point-polygon", "rle-sum", "rle-string", "zero-width", "huge-width",
         "size-differs", "unknown-category", "too-many-classes"],
)
def test_bad_files_are_named_with_the_fix(coco_copy, tmp_path, change, message):
    change(coco_copy)
    with pytest.raises(SemsegError, match=message):
        dataset(coco_copy, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.png")), "a failed build leaves nothing in the cache"


def test_missing_split_file_and_folder_name_the_key(coco_copy, tmp_path):
    with pytest.raises(SemsegError, match=r"data.annotations has no file for split 'test' \(it names \['train', 'val'\]\)"):
        dataset(coco_copy, tmp_path, "test")
    (coco_copy / ANNOTATIONS["val"]).unlink()
    with pytest.raises(SemsegError, match=r"data.annotations.val=annotations/instances_val.json gives .* which does not exist"):
        dataset(coco_copy, tmp_path, "val")
    with pytest.raises(SemsegError, match=r"data.image_dir=pictures gives .*pictures for split 'train', which does not exist"):
        CocoDataset(coco_copy, "train", ANNOTATIONS, tmp_path, image_dir="pictures")


def test_masks_are_built_once_and_again_when_the_file_or_the_classes_change(coco_copy, tmp_path):
    cache = tmp_path / "cache"
    first = dataset(coco_copy, cache)
    built = {path: stat for path, stat in tree_listing(cache).items() if path.endswith(".png")}
    assert len(built) == 4 and len({path.rsplit("/", 2)[1] for path in built}) == 1, "one folder, a mask per image"
    again = dataset(coco_copy, cache)
    assert again.mask_paths == first.mask_paths and tree_listing(cache).items() >= built.items(), "reused, not rewritten"
    assert len(list(cache.rglob("*.png"))) == 4
    fewer = dataset(coco_copy, cache, class_names=["background", "cat"])
    assert fewer.mask_paths[0].parent != first.mask_paths[0].parent, "another class list builds its own masks"
    edit(coco_copy, "train", lambda c: c["annotations"][0].update(segmentation=[box_polygon(0, 0, 40, 32)]))
    changed = dataset(coco_copy, cache)
    assert changed.mask_paths[0].parent not in (first.mask_paths[0].parent, fewer.mask_paths[0].parent)
    mask = changed.read_mask(changed.mask_paths[0])
    assert (mask[mask != 2] == 3).sum() == 6 * 6 + 8 * 10 and set(np.unique(mask)) == {1, 2, 3}, "the edit shows"
    assert tree_listing(cache).items() >= built.items(), "earlier masks untouched"


def test_the_config_takes_every_category_and_trains_without_writing_beside_the_data(make_cfg, coco_tree, data_dir):
    root = coco_tree[0]
    before = tree_listing(root)
    cfg = make_cfg([*LAYOUT, f"data.root={root}", "model=fcn8s", "trainer.max_epochs=1", "model/scheduler=constant",
                    "logger=csv", "callbacks=model_checkpoint", "data.crop_size=[32,32]", "data.batch_size=2"])
    assert list(cfg.data.class_names) == DEFAULT_CLASSES and cfg.data.num_classes == 4
    metrics = train(cfg)
    assert 0 <= metrics["test/mIoU"] <= 1 and "test/IoU/bird" in metrics
    assert tree_listing(root) == before, "nothing written under data.root"
    assert list((data_dir / ".cache" / "coco_masks").glob("*/10.png")), "the masks are in paths.data_dir/.cache"


def test_the_default_classes_follow_the_file(coco_copy):
    assert coco_class_names(str(coco_copy), ANNOTATIONS["train"]) == DEFAULT_CLASSES
    edit(coco_copy, "train", lambda c: c["categories"].append({"id": 0, "name": "background"}))
    edit(coco_copy, "train", lambda c: c["categories"].append({"id": 7, "name": "fish"}))
    assert coco_class_names(str(coco_copy), ANNOTATIONS["train"]) == [*DEFAULT_CLASSES, "fish"], "re-read once changed"
    with pytest.raises(SemsegError, match=r"data.annotations=nowhere.json names .*nowhere.json, which does not exist"):
        coco_class_names(str(coco_copy), "nowhere.json")


def test_roboflow_layout_with_images_beside_the_json(make_cfg, coco_copy):
    """Roboflow: `<split>/_annotations.coco.json` among the images, splits train/valid."""
    for split, exported in (("train", "train"), ("val", "valid")):
        shutil.copytree(coco_copy / "images" / split, coco_copy / exported)
        shutil.copy(coco_copy / ANNOTATIONS[split], coco_copy / exported / "_annotations.coco.json")
    write_image(coco_copy / "valid" / "unlisted.png", 8, 8, "L")  # an image no annotation file names: not read
    cfg = make_cfg(["data=coco", f"data.root={coco_copy}", 'data.image_dir="{split}"',
                    "data.annotations.train=train/_annotations.coco.json", "+data.annotations.valid=valid/_annotations.coco.json",
                    "data.splits.val=valid", "data.splits.test=valid"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("validate")
    assert datamodule.datasets["val"].names == ["e", "f"] and datamodule.num_classes == 4


def test_inspect_reads_the_masks(coco_tree, tmp_path):
    # class names given: the subprocess composes before this module's resolver fixture could help
    result = run_cli([PYTHON, "-m", "semseg.data.inspect", *LAYOUT, f"data.root={coco_tree[0]}",
                      f"data.class_names=[{','.join(DEFAULT_CLASSES)}]", f"paths.data_dir={tmp_path / 'data'}",
                      f"paths.log_dir={tmp_path / 'logs'}", "data.num_workers=0", f"output={tmp_path / 'out'}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "split 'train': 4 images" in result.stdout and "split 'val': 2 images" in result.stdout
    rows = [line.split(",") for line in (tmp_path / "out/classes.csv").read_text().splitlines()[1:]]
    pixels = {(split, name): int(count) for split, value, name, count, share, images in rows}
    assert pixels[("val", "cat")] == 16 * 22 and pixels[("val", "dog")] == 32 * 22
    assert pixels[("val", "background")] == 44 * 32 + 16 * 22 and pixels[("val", "ignore")] == 0


def test_uncompressed_rle_matches_pycocotools():
    """The fixture's own RLE counting agrees with pycocotools' (so the expectation is independent)."""
    from pycocotools import mask as coco_mask

    from tests.helpers.annotation_files import uncompressed_rle

    block = np.zeros((6, 5), bool)
    block[1:4, 2:5] = True
    rle = uncompressed_rle(block)
    assert np.array_equal(coco_mask.decode(coco_mask.frPyObjects(rle, 6, 5)).astype(bool), block)


def test_a_cache_that_cannot_be_written_is_named(coco_tree, tmp_path):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(SemsegError, match=r"cannot write the masks into the cache .*cache/coco_masks: .* set data.cache_dir"):
        dataset(coco_tree[0], blocked)


# ---- one export, as CVAT and Label Studio write it ----------------------------------------------

CVAT = "annotations/instances_default.json"
HALVES = {"train": 0.5, "val": 0.5}
TINY = ["trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=1", "data.batch_size=2", "data.crop_size=[32,32]", "model=fcn8s",
        "logger=csv", "callbacks=none"]


@pytest.fixture(scope="module")
def cvat_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports") / "cvat"
    return root, make_cvat_export(root)


def cvat_dataset(root, cache, split, **settings) -> CocoDataset:
    options = dict(image_dir="images", split_fractions=HALVES) | settings
    return CocoDataset(root, split, CVAT, cache, **options)


def hash_halves(names) -> dict[str, list[str]]:
    """The split stated independently: names by SHA-256 of "0:<name>", the first half train."""
    order = sorted(names, key=lambda name: hashlib.sha256(f"0:{name}".encode()).hexdigest())
    return {"train": sorted(order[: len(order) // 2]), "val": sorted(order[len(order) // 2 :])}


def test_one_cvat_file_is_split_by_fractions_with_exact_masks(cvat_tree, tmp_path):
    root, expected = cvat_tree
    datasets = {split: cvat_dataset(root, tmp_path / "cache", split) for split in HALVES}
    assert {split: sorted(data.names) for split, data in datasets.items()} == hash_halves(CVAT_NAMES)
    assert datasets["train"].split_lists == hash_halves(CVAT_NAMES), "every split's list, for the run folder"
    for data in datasets.values():
        assert data.class_names == ["background", "cat", "dog"]
        for index, name in enumerate(data.names):
            assert np.array_equal(data.load(index)[1], expected[name]), name
    assert datasets["val"].mask_paths[0].parent == datasets["train"].mask_paths[0].parent, "one file, one mask folder"
    again = {split: cvat_dataset(root, tmp_path / "other", split).names for split in HALVES}
    assert again == {split: data.names for split, data in datasets.items()}, "the same split every time"


def test_the_split_does_not_depend_on_the_order_of_the_file(cvat_tree, tmp_path):
    root = shutil.copytree(cvat_tree[0], tmp_path / "cvat")
    content = json.loads((root / CVAT).read_text())
    content["images"].reverse()
    write_json(root / CVAT, content)
    val = cvat_dataset(root, tmp_path / "cache", "val").names
    assert sorted(val) == hash_halves(CVAT_NAMES)["val"] and val == sorted(val, reverse=True), "in the file's order"
    assert sorted(cvat_dataset(root, tmp_path / "cache", "val", split_seed=1).names) != hash_halves(CVAT_NAMES)["val"]


def test_a_cvat_export_trains_from_the_config_and_writes_its_lists_to_the_run_folder(make_cfg, cvat_tree, tmp_path):
    root = cvat_tree[0]
    before = tree_listing(root)
    overrides = ["data=coco", f"data.root={root}", "data.image_dir=images", f"data.annotations={CVAT}",
                 "data.split_fractions={train:0.5,val:0.5}"]
    cfg = make_cfg([*overrides, *TINY])
    assert list(cfg.data.class_names) == ["background", "cat", "dog"], "the default classes come from the one file"
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and "test/IoU/dog" in metrics
    written = {split: (tmp_path / "run/splits" / f"{split}.txt").read_text().split() for split in HALVES}
    assert written == hash_halves(CVAT_NAMES)
    assert tree_listing(root) == before, "nothing written under data.root"
    pinned = make_cfg([*overrides[:4], f"data.split_files={{train:{tmp_path}/run/splits/train.txt,"
                                       f"val:{tmp_path}/run/splits/val.txt}}"], output="run2")
    datamodule = instantiate(pinned.data)
    datamodule.setup("validate")
    assert datamodule.datasets["val"].names == written["val"], "the written lists pin the split"


def test_split_files_name_images_with_or_without_extension(cvat_tree, tmp_path):
    root = shutil.copytree(cvat_tree[0], tmp_path / "cvat")
    (root / "train.txt").write_text("# picked by hand\nframe_000000\nframe_000001.jpg\n\nsubset/frame_000005\n")
    (root / "val.txt").write_text("frame_000002\n")
    files = {"train": "train.txt", "val": "val.txt"}
    train_set = cvat_dataset(root, tmp_path / "cache", "train", split_fractions=None, split_files=files)
    assert train_set.names == ["frame_000000", "frame_000001", "subset/frame_000005"]
    assert cvat_dataset(root, tmp_path / "cache", "val", split_fractions=None, split_files=files).names == ["frame_000002"]
    (root / "val.txt").write_text("frame_000002\nframe_000009\n")
    with pytest.raises(SemsegError, match=r"1 name\(s\) in .*val.txt have no image in .*cvat/images: frame_000009"):
        cvat_dataset(root, tmp_path / "cache", "val", split_fractions=None, split_files=files)


def test_label_studio_file_names_ids_from_zero_and_missing_keys(tmp_path):
    root = tmp_path / "label-studio"
    expected = make_label_studio_export(root)
    before = tree_listing(root)
    fractions = {"train": 0.67, "val": 0.33}
    datasets = {split: CocoDataset(root, split, "result.json", tmp_path / "cache", split_fractions=fractions)
                for split in fractions}
    assert sorted(datasets["train"].names + datasets["val"].names) == sorted(expected), "images/<name>, whatever the form"
    assert datasets["train"].class_names == ["background", "Cat", "Dog"], "category 0 is a category, not background"
    for data in datasets.values():
        for index, name in enumerate(data.names):
            assert np.array_equal(data.load(index)[1], expected[name]), name
            assert data.image_paths[index] == root / f"{name}.jpg"
    assert tree_listing(root) == before


def test_roboflow_bare_names_beside_the_json_are_found(coco_copy, tmp_path):
    shutil.copytree(coco_copy / "images" / "val", coco_copy / "valid")
    shutil.copy(coco_copy / ANNOTATIONS["val"], coco_copy / "valid" / "_annotations.coco.json")
    data = CocoDataset(coco_copy, "valid", {"valid": "valid/_annotations.coco.json"}, tmp_path)  # image_dir "."
    assert data.image_paths == [coco_copy / "valid/e.png", coco_copy / "valid/f.png"] and data.names == ["valid/e", "valid/f"]


def test_a_file_name_found_twice_by_its_name_is_refused_naming_both(tmp_path):
    root = tmp_path / "label-studio"
    make_label_studio_export(root)
    write_image(root / "images" / "old" / "8b01d7aa-park.jpg", 20, 26, "RGB")
    with pytest.raises(SemsegError, match=r"the image '/data/upload/3/8b01d7aa-park.jpg' is not at its path, and 2 files "
                                          r"under .* have its name '8b01d7aa-park.jpg': .*images/8b01d7aa-park.jpg, "
                                          r".*images/old/8b01d7aa-park.jpg"):
        CocoDataset(root, "train", "result.json", tmp_path / "cache", split_fractions=HALVES)


def test_annotations_of_images_the_file_lacks_are_named(tmp_path):
    root = tmp_path / "label-studio"
    make_label_studio_export(root)
    content = json.loads((root / "result.json").read_text())
    content["annotations"] += [{"id": 7, "image_id": 5, "category_id": 0, "segmentation": []},
                               {"id": 8, "image_id": 9, "category_id": 0, "segmentation": []}]
    write_json(root / "result.json", content)
    with pytest.raises(SemsegError, match=r"result.json: 2 annotation\(s\) are of image_id\(s\) 5, 9, which no entry of "
                                          r"'images' has \(image ids 0, 1, 2\)"):
        CocoDataset(root, "train", "result.json", tmp_path / "cache", split_fractions=HALVES)


@pytest.mark.parametrize(
    ("annotations", "settings", "message"),
    [(CVAT, dict(split_fractions=None), r"data.annotations=annotations/instances_default.json is one file for every "
                                         r"split; split it with 'data.split_fractions=\{train:0.8,val:0.2\}'"),
     ({"train": CVAT}, {}, r"data.split_fractions splits one COCO file, but data.annotations=.* has a file per split"),
     (CVAT, dict(image_dir="images/{split}"), r"data.split_fractions splits one folder, but data.image_dir=images/\{split\} "
                                                r"has a folder per split; set data.image_dir to the one folder, e.g. "
                                                r"data.image_dir=images"),
     (CVAT, dict(split_fractions={"train": 0.8, "val": 0.3}), r"sums to 1.1; the fractions must sum to 1"),
     (CVAT, dict(split_fractions={"a": 0.5, "b": 0.5}), r"split 'train' is not one of data.split_fractions \['a', 'b'\]"),
     (CVAT, dict(split_files={"train": "t.txt"}), r"are both set; keep one"),
     (CVAT, dict(split_fractions={"train": 0.99, "val": 0.01}), r"gives split 'val' no items of the 6 found")],
    ids=["one-file-unsplit", "per-split-files-split", "template", "sum", "unknown-split", "both", "empty-split"],
)
def test_split_mistakes_are_one_line_as_for_folders(cvat_tree, tmp_path, annotations, settings, message):
    with pytest.raises(SemsegError, match=message):
        CocoDataset(cvat_tree[0], "train", annotations, tmp_path, **(dict(image_dir="images", split_fractions=HALVES) | settings))


def test_two_images_of_one_item_name_cannot_be_split(cvat_tree, tmp_path):
    root = shutil.copytree(cvat_tree[0], tmp_path / "cvat")
    write_image(root / "images" / "frame_000000.png", 26, 29, "RGB")
    content = json.loads((root / CVAT).read_text())
    content["images"].append({"id": 99, "file_name": "frame_000000.png", "width": 29, "height": 26})
    write_json(root / CVAT, content)
    with pytest.raises(SemsegError, match=r"frame_000000.jpg and .*frame_000000.png have the same item name 'frame_000000'"):
        cvat_dataset(root, tmp_path / "cache", "train")


def test_the_default_classes_of_one_file_or_a_mapping(cvat_tree, coco_tree):
    assert coco_class_names(str(cvat_tree[0]), CVAT) == ["background", "cat", "dog"]
    mapping = OmegaConf.create({"annotations": ANNOTATIONS}).annotations  # what the resolver gets
    assert coco_class_names(str(coco_tree[0]), mapping) == DEFAULT_CLASSES
    with pytest.raises(SemsegError, match=r"data.annotations has no file for split 'train' \(it names \['val'\]\)"):
        coco_class_names(str(coco_tree[0]), {"val": ANNOTATIONS["val"]})


def test_a_stage_takes_the_first_split_of_its_candidates(make_cfg, cvat_tree):
    cfg = make_cfg(["data=coco", f"data.root={cvat_tree[0]}", "data.image_dir=images", f"data.annotations={CVAT}",
                    "data.split_fractions={train:0.5,val:0.25,test:0.25}", "data.splits.test=[test,val]"])
    assert instantiate(cfg.data).splits == {"train": "train", "val": "val", "test": "test"}
    cfg = make_cfg(["data=coco", f"data.root={cvat_tree[0]}", "data.image_dir=images", f"data.annotations={CVAT}",
                    "data.split_fractions={train:0.5,validation:0.5}"])
    with pytest.raises(SemsegError, match=r"data.splits.val=val is not one of the splits of data.split_fractions"):
        instantiate(cfg.data)


def test_absolute_windows_and_url_file_names_are_found_by_their_name_alone(tmp_path):
    images, elsewhere = tmp_path / "export" / "images", tmp_path / "export" / "annotations"
    photo = write_image(images / "day 1" / "b7-photo.jpg", 8, 8, "RGB")
    write_image(tmp_path / "b7-photo.jpg", 8, 8, "RGB")  # at the absolute path's place: never read
    finder = ImageFinder(images, elsewhere)
    for file_name in (str(tmp_path / "b7-photo.jpg"), "C:\\Users\\me\\Pictures\\b7-photo.jpg",
                      "http://localhost:8080/data/upload/3/b7-photo.jpg", "/data/local-files/?d=b7%2Dphoto.jpg",
                      "day 1\\b7-photo.jpg", "other/b7-photo.jpg"):
        assert finder.find(file_name) == photo, file_name
        assert finder.item_name(photo, file_name) == "day 1/b7-photo"
    assert finder.find("/data/upload/3/unknown.jpg") is None
