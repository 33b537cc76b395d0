"""COCO and labelme annotation files as the tools write them, over real images of mixed sizes and
modes, each with the mask it must give, stated by hand (numpy slices) wherever the shape allows."""

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

SUFFIX_OF_MODE = {"RGB": ".jpg", "L": ".png", "RGBA": ".png"}


def image_bytes(height: int, width: int, mode: str, seed: int, format: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode).save(buffer, format=format)
    return buffer.getvalue()


def write_image(path: Path, height: int, width: int, mode: str, seed: int = 0) -> Path:
    """A noise image of `mode` (RGB as JPEG when the path says .jpg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(height, width, mode, seed, "JPEG" if path.suffix == ".jpg" else "PNG"))
    return path


def write_json(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1))
    return path


def tree_listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time, to see that nothing changed."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


# ---- COCO ----------------------------------------------------------------------------------------

# listed out of id order, as exports do; the default classes are background, cat, dog, bird
COCO_CATEGORIES = [{"id": 3, "name": "bird", "supercategory": "animal"}, {"id": 1, "name": "cat", "supercategory": "animal"},
                   {"id": 2, "name": "dog", "supercategory": "animal"}]
BACKGROUND, CAT, DOG, BIRD = 0, 1, 2, 3


def box_polygon(x0: int, y0: int, x1: int, y1: int) -> list[int]:
    """An axis-aligned COCO polygon; COCO's rasteriser fills rows y0..y1-1 and columns x0..x1-1."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE, counted here: run lengths down the columns, starting with 0s."""
    flat = mask.ravel(order="F").astype(np.uint8)
    runs, value, length = [], 0, 0
    for pixel in flat:
        if pixel == value:
            length += 1
        else:
            runs.append(length)
            value, length = pixel, 1
    runs.append(length)
    return {"size": list(mask.shape), "counts": [int(r) for r in runs]}


def compressed_rle(mask: np.ndarray) -> dict:
    """COCO's compressed RLE string, as pycocotools encodes it (CVAT and Label Studio write these)."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def pycocotools_polygon_mask(polygons: list, height: int, width: int) -> np.ndarray:
    """What COCO's own API (`annToMask`) gives for a polygon segmentation."""
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))).astype(bool)


def coco_json(images: list[dict], annotations: list[dict], categories=COCO_CATEGORIES) -> dict:
    numbered = [{"id": number + 1, "iscrowd": 0, "area": 0, "bbox": [0, 0, 1, 1], **a} for number, a in enumerate(annotations)]
    return {"info": {"description": "exported"}, "licenses": [], "images": images, "annotations": numbered,
            "categories": categories}


def _train_split(root: Path) -> tuple[dict, dict]:
    """Four images: landscape RGB JPEG, portrait grayscale, RGBA without annotations, a box-only one."""
    folder = root / "images" / "train"
    write_image(folder / "a.jpg", 32, 40, "RGB", 1)
    write_image(folder / "sub" / "b.png", 48, 30, "L", 2)
    write_image(folder / "c.png", 36, 36, "RGBA", 3)
    write_image(folder / "d.jpg", 40, 32, "RGB", 4)
    images = [{"id": 10, "file_name": "a.jpg", "height": 32, "width": 40},
              {"id": 11, "file_name": "sub/b.png", "height": 48, "width": 30},
              {"id": 12, "file_name": "c.png", "height": 36, "width": 36},
              {"id": 13, "file_name": "d.jpg", "height": 40, "width": 32}]
    a = np.zeros((32, 40), np.uint8)
    a[4:16, 4:20] = CAT
    dog_block = np.zeros((32, 40), bool)
    dog_block[10:20, 14:30] = True
    a[dog_block] = DOG  # drawn after the cat: wins where they overlap
    a[2:8, 30:36] = a[20:30, 30:38] = BIRD  # one annotation of two polygons
    staircase = np.add.outer(np.arange(48), np.arange(30)) < 20  # x + y < 20
    triangle = [[2, 40, 28, 40, 15, 46]]
    b = np.where(staircase, BIRD, BACKGROUND).astype(np.uint8)
    b[pycocotools_polygon_mask(triangle, 48, 30)] = CAT
    annotations = [
        {"image_id": 10, "category_id": 1, "segmentation": [box_polygon(4, 4, 20, 16)]},
        {"image_id": 10, "category_id": 2, "segmentation": uncompressed_rle(dog_block)},
        {"image_id": 10, "category_id": 3, "segmentation": [box_polygon(30, 2, 36, 8), box_polygon(30, 20, 38, 30)]},
        {"image_id": 11, "category_id": 3, "segmentation": compressed_rle(staircase), "iscrowd": 1},
        {"image_id": 11, "category_id": 1, "segmentation": triangle},
        {"image_id": 13, "category_id": 2, "segmentation": [], "bbox": [2, 2, 10, 10]},
    ]
    expected = {"a": a, "sub/b": b, "c": np.zeros((36, 36), np.uint8), "d": np.zeros((40, 32), np.uint8)}
    return coco_json(images, annotations), expected


def _val_split(root: Path) -> tuple[dict, dict]:
    folder = root / "images" / "val"
    write_image(folder / "e.png", 32, 44, "RGB", 5)
    write_image(folder / "f.png", 44, 32, "L", 6)
    images = [{"id": 1, "file_name": "e.png", "height": 32, "width": 44},
              {"id": 2, "file_name": "f.png", "height": 44, "width": 32}]
    e = np.zeros((32, 44), np.uint8)
    e[0:16, :] = CAT
    e[:, 22:44] = DOG
    annotations = [{"image_id": 1, "category_id": 1, "segmentation": [box_polygon(0, 0, 44, 16)]},
                   {"image_id": 1, "category_id": 2, "segmentation": [box_polygon(22, 0, 44, 32)]}]
    return coco_json(images, annotations), {"e": e, "f": np.zeros((44, 32), np.uint8)}


def make_coco(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """`root/annotations/instances_{train,val}.json` and `root/images/{split}/`; the expected masks
    (default classes background, cat, dog, bird) by split and name."""
    expected = {}
    for split, build in (("train", _train_split), ("val", _val_split)):
        content, expected[split] = build(root)
        write_json(root / "annotations" / f"instances_{split}.json", content)
    return expected


# ---- labelme -------------------------------------------------------------------------------------

LABELME_CLASSES = ["_background_", "cat", "dog"]
DISK_ROWS = [3, 7, 7, 9, 9, 9, 7, 7, 3]  # Pillow's disk of radius 4: pixels per row, centred


def labelme_json(shapes: list[dict], image_path: str | None, height: int | None, width: int | None,
                 image_data: str | None = None) -> dict:
    content = {"version": "5.4.1", "flags": {}, "shapes": [{"group_id": None, "description": "", "flags": {}, **s} for s in shapes],
               "imagePath": image_path, "imageData": image_data}
    if height is not None:
        content |= {"imageHeight": height, "imageWidth": width}
    return content


def shape(label: str, kind: str, points: list, **extra) -> dict:
    return {"label": label, "shape_type": kind, "points": points, **extra}


def mask_shape(label: str, x: int, y: int, pixels: np.ndarray) -> dict:
    """labelme 5's `mask` shape: a base64 PNG of the box from (x, y) to its far corner, inclusive."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
    h, w = pixels.shape
    return shape(label, "mask", [[x, y], [x + w - 1, y + h - 1]], mask=base64.b64encode(buffer.getvalue()).decode())


def _street(folder: Path) -> np.ndarray:
    write_image(folder / "street" / "0001.jpg", 40, 48, "RGB", 11)
    shapes = [shape("cat", "rectangle", [[10, 8], [2, 3]]),  # corners in any order
              shape("dog", "polygon", [[8, 2], [20, 2], [20, 6], [8, 6]]),
              shape("cat", "circle", [[30, 20], [34, 20]]),
              shape("dog", "line", [[2, 30], [20, 30]]),
              shape("cat", "point", [[40, 5]]),
              shape("__ignore__", "polygon", [[40, 30], [46, 30], [46, 38], [40, 38]])]
    write_json(folder / "street" / "0001.json", labelme_json(shapes, "0001.jpg", 40, 48))
    mask = np.zeros((40, 48), np.uint8)
    mask[3:9, 2:11] = 1  # Pillow fills a rectangle's corners inclusive
    mask[2:7, 8:21] = 2  # and a polygon's outline: x 8..20, y 2..6, over the rectangle
    for row, count in enumerate(DISK_ROWS):
        mask[16 + row, 30 - count // 2 : 30 + count // 2 + 1] = 1
    mask[26:36, 2:21] = 2  # a 10-pixel line along y = 30 covers rows 26..35
    mask[30:39, 40:47] = 255
    return mask


def _embedded(folder: Path) -> np.ndarray:
    """No image file: imagePath names one that is not there, imageData holds a grayscale PNG."""
    pixels = np.array([[1, 0, 1, 0, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 1], [0, 0, 1, 1, 1, 1, 1, 1],
                       [1, 1, 1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1, 0, 1]], bool)  # 8 wide, 5 high
    data = base64.b64encode(image_bytes(44, 30, "L", 12)).decode()
    shapes = [mask_shape("cat", 5, 6, pixels), shape("dog", "linestrip", [[3, 30], [3, 40], [20, 40]])]
    write_json(folder / "0002.json", labelme_json(shapes, "gone/0002.png", 44, 30, data))
    mask = np.zeros((44, 30), np.uint8)
    mask[6:11, 5:13][pixels] = 1
    mask[30:41, 0:9] = 2  # the vertical stroke x = 3 (columns -1..8, clipped), y 30..40
    mask[36:46, 3:21] = 2  # the horizontal one y = 40 (rows 36..45, clipped)
    return mask


def make_labelme(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """`root/{train,val}/**/*.json` with images beside them, elsewhere, or embedded; the expected
    masks (classes LABELME_CLASSES) by split and name."""
    train = root / "train"
    expected = {"street/0001": _street(train), "0002": _embedded(train)}
    write_image(root / "images" / "0003.png", 36, 36, "RGBA", 13)
    write_json(train / "nested" / "0003.json", labelme_json([], "../../images/0003.png", 36, 36))
    expected["nested/0003"] = np.zeros((36, 36), np.uint8)
    write_image(train / "0004.png", 32, 40, "RGB", 14)  # an old file: no size, shape_type null
    write_json(train / "0004.json", labelme_json([shape("dog", None, [[0, 0], [10, 0], [10, 5], [0, 5]])], "0004.png", None, None))
    expected["0004"] = np.zeros((32, 40), np.uint8)
    expected["0004"][0:6, 0:11] = 2
    val = root / "val"
    write_image(val / "0101.png", 32, 32, "RGB", 15)
    write_json(val / "0101.json", labelme_json([shape("cat", "rectangle", [[0, 0], [15, 31]])], "0101.png", 32, 32))
    write_image(val / "0102.jpg", 40, 28, "RGB", 16)
    write_json(val / "0102.json", labelme_json([], "0102.jpg", 40, 28))
    first = np.zeros((32, 32), np.uint8)
    first[:, 0:16] = 1
    return {"train": expected, "val": {"0101": first, "0102": np.zeros((40, 28), np.uint8)}}


# ---- single exports, as the tools write them -----------------------------------------------------

CVAT_NAMES = ["frame_000000", "frame_000001", "frame_000002", "frame_000003", "frame_000004", "subset/frame_000005"]


def _cvat_image(number: int, file_name: str, height: int, width: int) -> dict:
    return {"id": number, "width": width, "height": height, "file_name": file_name, "license": 0, "flickr_url": "",
            "coco_url": "", "date_captured": 0}


def _cvat_annotation(number: int, image_id: int, category_id: int, segmentation, crowd: int = 0) -> dict:
    return {"id": number, "image_id": image_id, "category_id": category_id, "segmentation": segmentation,
            "area": 0.0, "bbox": [0.0, 0.0, 1.0, 1.0], "iscrowd": crowd, "attributes": {"occluded": False}}


def make_cvat_export(root: Path) -> dict[str, np.ndarray]:
    """CVAT's "COCO 1.0" export: one `annotations/instances_default.json`, file_names relative to
    `images/` (a subfolder too), ids from 1, masks as uncompressed RLE with `iscrowd: 1`,
    rectangles as boxes without segmentation, `attributes` on every annotation. The expected
    masks (classes background, cat, dog) by item name."""
    images, annotations, expected = [], [], {}
    for number, name in enumerate(CVAT_NAMES, start=1):
        height, width = 24 + 2 * number, 30 - number
        write_image(root / "images" / f"{name}.jpg", height, width, "RGB", 20 + number)
        images.append(_cvat_image(number, f"{name}.jpg", height, width))
        mask = np.zeros((height, width), np.uint8)
        mask[2:10, 3:12] = CAT  # polygon rows 2..9, columns 3..11
        annotations.append(_cvat_annotation(len(annotations) + 1, number, 1, [box_polygon(3, 2, 12, 10)]))
        if number % 2:  # a brush mask: uncompressed RLE over the whole image
            block = np.zeros((height, width), bool)
            block[8 + number : 20, 5:9 + number] = True
            mask[block] = DOG
            annotations.append(_cvat_annotation(len(annotations) + 1, number, 2, uncompressed_rle(block), crowd=1))
        rectangle = _cvat_annotation(len(annotations) + 1, number, 2, [])  # a box: paints nothing
        rectangle["attributes"] |= {"rotation": 0.0}
        annotations.append(rectangle)
        expected[name] = mask
    content = {"licenses": [{"name": "", "id": 0, "url": ""}],
               "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
               "categories": [{"id": 1, "name": "cat", "supercategory": ""}, {"id": 2, "name": "dog", "supercategory": ""}],
               "images": images, "annotations": annotations}
    write_json(root / "annotations" / "instances_default.json", content)
    return expected


def make_label_studio_export(root: Path) -> dict[str, np.ndarray]:
    """Label Studio's COCO export: one `result.json` beside `images/`, ids from 0 (categories
    too, in name order), file_names relative to the JSON's folder, as the absolute upload path
    and with Windows separators; polygons of float coordinates, boxes with an empty
    segmentation, and keys left out (`iscrowd`, `area`, `bbox`, a `segmentation`). The expected
    masks (default classes background, Cat, Dog: "Cat" is category 0) by item name."""
    folder = root / "images"
    forms = [("images/3f2a9c1e-street.jpg", "3f2a9c1e-street"), ("/data/upload/3/8b01d7aa-park.jpg", "8b01d7aa-park"),
             ("images\\c7e4f003-yard.jpg", "c7e4f003-yard")]
    images, expected = [], {}
    for number, (file_name, stem) in enumerate(forms):
        write_image(folder / f"{stem}.jpg", 20, 26, "RGB", 30 + number)
        images.append({"width": 26, "height": 20, "id": number, "file_name": file_name})
        expected[f"images/{stem}"] = np.zeros((20, 26), np.uint8)
    expected["images/3f2a9c1e-street"][3:9, 2:10] = 1  # the float box, rows 3..8, columns 2..9
    expected["images/8b01d7aa-park"][10:20, 0:13] = 2
    annotations = [
        {"id": 0, "image_id": 0, "category_id": 0, "ignore": 0, "iscrowd": 0, "area": 48.0, "bbox": [2.0, 3.0, 8.0, 6.0],
         "segmentation": [[2.0, 3.0, 10.0, 3.0, 10.0, 9.0, 2.0, 9.0]]},
        {"id": 1, "image_id": 0, "category_id": 1, "segmentation": [], "bbox": [0, 0, 5, 5], "ignore": 0, "iscrowd": 0, "area": 25},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [box_polygon(0, 10, 13, 20)]},  # no iscrowd, area, bbox
        {"id": 3, "image_id": 2, "category_id": 0, "bbox": [1, 1, 4, 4], "ignore": 0},  # no segmentation at all
    ]
    content = {"images": images, "categories": [{"id": 0, "name": "Cat"}, {"id": 1, "name": "Dog"}],
               "annotations": annotations,
               "info": {"year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio", "url": "",
                        "date_created": "2024-05-01 10:00:00.000000"}}
    write_json(root / "result.json", content)
    return expected


FLAT_LABELME = ["IMG_0001", "IMG_0002", "IMG_0003", "IMG_0004", "IMG_0005", "IMG_0006"]


def make_flat_labelme(root: Path) -> dict[str, np.ndarray]:
    """One folder of labelme 5 files beside their images, no splits (as labelme saves them):
    `imageData: null`, `flags`, `group_id`, `description`, and a `points` shape (skipped). The
    expected masks (classes LABELME_CLASSES) by item name."""
    expected = {}
    for number, name in enumerate(FLAT_LABELME):
        height, width = 20 + number, 24
        write_image(root / f"{name}.jpg", height, width, "RGB", 40 + number)
        shapes = [shape("cat", "rectangle", [[2, 2], [8, 6]], group_id=number, description="tail visible"),
                  shape("dog", "polygon", [[12, 4], [20, 4], [20, 12], [12, 12]]),
                  shape("cat", "points", [[1, 15], [5, 16], [9, 17]], point_labels=[1, 1, 0]),
                  shape("dog", "point", [[22, 18]])]
        write_json(root / f"{name}.json", labelme_json(shapes, f"{name}.jpg", height, width))
        mask = np.zeros((height, width), np.uint8)
        mask[2:7, 2:9] = 1
        mask[4:13, 12:21] = 2
        expected[name] = mask
    return expected
