"""Concept datasets: 10 concepts, 10 anchor words, 8 training images per concept, a validation split with boxes.

The mini datasets mirror the paper's four in flavour:

| dataset          | like        | concepts                                             | anchors                 |
|------------------|-------------|------------------------------------------------------|-------------------------|
| `mini-objects`   | ImageNet    | the 10 shapes, any colour/pattern/size               | the shape names         |
| `mini-instances` | DreamBooth  | 10 specific objects (colour + pattern + shape) that no single word names | one word of each name |
| `mini-scenes`    | COCO / VOC  | cluttered 1–4 object scenes, labelled by the largest object's shape | the shape names |

Your own concepts: a folder with one sub-folder of images per concept (at least 2 concepts, at least 3 images
each; optionally a `boxes.json` in a sub-folder mapping file names to [[x0, y0, x1, y1], ...] pixel boxes, else the
whole image is the box). Split rule: in file-name order, the last ceil(n / 5) images of a concept are held out (at
least 1), the rest train. The folder names are the concepts and, unless anchors are given, the anchors.

Usage:
    ds = load_dataset("mini-instances")            # ConceptDataset, deterministic
    ds = load_dataset("photos/")                   # photos/mug/*.jpg, photos/teapot/*.png, ...
    ds.concepts[0], ds.anchors[0]                   # "red_striped_heart", "heart"
    ds.train[0].image, ds.val[0].boxes              # PIL 64x64, [[x0, y0, x1, y1]] of the concept's objects
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import VWError
from ..paths import DATA_DIR_ENV  # holds imagenet/, dreambooth/, coco/, pascal/
from .world import SHAPES, Scene, render, sample_scene, sample_single

IMAGE_SIZE = 64  # mini datasets are drawn at 64 px; each model's preprocessing resizes


@dataclass
class Example:
    image: Image.Image
    label: int  # index of the concept in `ConceptDataset.concepts`
    boxes: list[list[float]]  # pixel boxes [x0, y0, x1, y1] of the objects that are the concept
    caption: str = ""
    scene: Scene | None = None


@dataclass
class ConceptDataset:
    name: str
    concepts: list[str]
    anchors: list[str]  # index-aligned with concepts
    train: list[Example]  # `n_train` per concept
    val: list[Example]
    meta: dict = field(default_factory=dict)

    def concept_index(self, concept: str) -> int:
        if concept not in self.concepts:
            raise VWError(f"unknown concept {concept!r} in {self.name}; choose one of {', '.join(self.concepts)}")
        return self.concepts.index(concept)

    def display_name(self, concept: str) -> str:
        """The concept in words, for prompts: "red_striped_heart" -> "red striped heart"."""
        return concept.replace("_", " ")

    def train_of(self, concept: str) -> list[Example]:
        i = self.concept_index(concept)
        return [e for e in self.train if e.label == i]


# --------------------------------------------------------------------------------------------------------------
# The mini datasets
# --------------------------------------------------------------------------------------------------------------

# DreamBooth-like instances: each is one specific object; shapes and colours recur, so no single word names one.
INSTANCES = {
    "red_striped_heart": ("heart", dict(shape="heart", colour="red", pattern="striped")),
    "pink_plain_heart": ("pink", dict(shape="heart", colour="pink", pattern="plain")),
    "blue_dotted_circle": ("circle", dict(shape="circle", colour="blue", pattern="dotted")),
    "blue_striped_square": ("square", dict(shape="square", colour="blue", pattern="striped")),
    "yellow_dotted_star": ("star", dict(shape="star", colour="yellow", pattern="dotted")),
    "orange_plain_star": ("orange", dict(shape="star", colour="orange", pattern="plain")),
    "green_striped_ring": ("ring", dict(shape="ring", colour="green", pattern="striped")),
    "purple_dotted_diamond": ("diamond", dict(shape="diamond", colour="purple", pattern="dotted")),
    "brown_plain_moon": ("moon", dict(shape="moon", colour="brown", pattern="plain")),
    "white_striped_arrow": ("arrow", dict(shape="arrow", colour="white", pattern="striped")),
}

MINI_DATASETS = ("mini-objects", "mini-instances", "mini-scenes")
_SEED_OFFSET = {"mini-objects": 1000, "mini-instances": 2000, "mini-scenes": 3000}


def mini_scene(dataset: str, concept_index: int, rng: np.random.Generator) -> tuple[Scene, int]:
    """A scene of `concept_index` in `dataset`, and the index of the object that is the concept."""
    if dataset == "mini-objects":
        return sample_single(rng, shape=SHAPES[concept_index]), 0
    if dataset == "mini-instances":
        _, attributes = list(INSTANCES.values())[concept_index]
        return sample_single(rng, **attributes), 0
    if dataset == "mini-scenes":
        while True:  # the concept must be the largest box: images are labelled by it, as COCO/VOC ones in the paper
            scene = sample_scene(rng, n_objects=(2, 4), first={"shape": SHAPES[concept_index], "size": "large"})
            if scene.largest() == 0:
                return scene, 0
    raise VWError(f"unknown dataset {dataset!r}; choose one of {', '.join(MINI_DATASETS)}")


def _examples(dataset: str, concepts: list[str], per_concept: int, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for label, concept in enumerate(concepts):
        for _ in range(per_concept):
            scene, _ = mini_scene(dataset, label, rng)
            out.append(Example(render(scene, IMAGE_SIZE), label, _concept_boxes(dataset, scene, label),
                               scene.caption(), scene))
    return out


def _concept_boxes(dataset: str, scene: Scene, label: int) -> list[list[float]]:
    """Ground-truth boxes of the concept: its object(s) in the scene."""
    boxes = scene.boxes(IMAGE_SIZE)
    if dataset == "mini-scenes":
        return [b for o, b in zip(scene.objects, boxes) if o.shape == SHAPES[label]]
    return boxes[:1]


def _unknown_dataset(name: str) -> VWError:
    return VWError(f"unknown dataset {name!r}; choose one of {', '.join([*MINI_DATASETS, *PAPER_DATASETS])}, or give "
                   f"a folder with one sub-folder of images per concept")


def concept_names(name: str) -> tuple[list[str], list[str]]:
    """(concepts, index-aligned anchors) of a dataset, without loading any image (plans, dry runs)."""
    if is_folder_dataset(name):
        names = [d.name for d in _concept_folders(Path(name))]
        return names, list(names)
    if name in PAPER_DATASETS:
        return list(PAPER_DATASETS[name][0]), list(PAPER_DATASETS[name][1])
    if name == "mini-instances":
        return list(INSTANCES), [a for a, _ in INSTANCES.values()]
    if name in MINI_DATASETS:
        return list(SHAPES), list(SHAPES)
    raise _unknown_dataset(name)


def own_anchor(dataset: str, concept: str) -> str:
    """The anchor a concept owns: its index-aligned anchor (mini-instances: one word of its name), e.g.
    own_anchor("mini-objects", "star") == "star"."""
    names, anchors = concept_names(dataset)
    if concept not in names:
        raise VWError(f"unknown concept {concept!r} in {dataset}; choose one of {', '.join(names)}")
    return anchors[names.index(concept)]


@functools.lru_cache(maxsize=8)
def load_mini_dataset(name: str, n_train: int = 8, n_val: int = 10, seed: int = 0) -> ConceptDataset:
    if name not in MINI_DATASETS:
        raise _unknown_dataset(name)
    concepts, anchors = concept_names(name)
    base = _SEED_OFFSET[name] + 10 * seed
    # train and val come from disjoint seeds: no image is in both
    return ConceptDataset(name, concepts, anchors, _examples(name, concepts, n_train, base + 1),
                          _examples(name, concepts, n_val, base + 2), meta={"image_size": IMAGE_SIZE, "seed": seed})


def load_dataset(name: str, **kwargs) -> ConceptDataset:
    """A dataset by name: the mini datasets (generated), the paper's four from local copies, or a folder of your
    own (one sub-folder of images per concept)."""
    if is_folder_dataset(name):
        return load_folder_dataset(name)
    if name in PAPER_DATASETS:
        return load_paper_dataset(name, **kwargs)
    return load_mini_dataset(name, **kwargs)


# --------------------------------------------------------------------------------------------------------------
# The paper's four datasets, from local copies (no machine here downloads them)
# --------------------------------------------------------------------------------------------------------------

PAPER_DATASETS = {  # docs/spec.md §4: 10 concepts and 10 index-aligned anchors each
    "imagenet": (["strawberry", "harp", "sturgeon", "gorilla", "throne", "pelican", "honeycomb", "barrel", "sombrero",
                  "scuba diver"],
                 ["strawberry", "harp", "sturgeon", "gorilla", "throne", "pelican", "honeycomb", "barrel", "hat",
                  "scuba"]),
    "dreambooth": (["cat2", "vase", "duck_toy", "candle", "colorful_sneaker", "backpack_dog", "grey_sloth_plushie",
                    "fancy_boot", "clock", "pink_sunglasses"],
                   ["cat", "vase", "duck", "candle", "sneaker", "backpack", "plush", "boot", "clock", "sunglasses"]),
    "coco": (["laptop", "scissors", "donut", "bear", "cup", "dog", "bottle", "umbrella", "cat", "remote"],) * 2,
    "pascal": (["airplane", "bicycle", "bird", "boat", "person", "train", "car", "cat", "horse", "cow"],) * 2,
}
_LAYOUT = {
    "imagenet": "imagenet/<concept>/*.JPEG with VOC-style <image>.xml box files beside them",
    "dreambooth": "dreambooth/<subject>/*.jpg (+ optional boxes.json: {subject: {file: [[x0, y0, x1, y1], ...]}})",
    "coco": "coco/annotations/instances_val2017.json and coco/val2017/*.jpg",
    "pascal": "pascal/Annotations/*.xml and pascal/JPEGImages/*.jpg (VOC2012 layout)",
}
_VOC_NAMES = {"airplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat", "person": "person",
              "train": "train", "car": "car", "cat": "cat", "horse": "horse", "cow": "cow"}


def _voc_boxes(xml_path) -> list[tuple[str, list[float]]]:
    import xml.etree.ElementTree as ET

    out = []
    for obj in ET.parse(xml_path).getroot().iter("object"):
        bb = obj.find("bndbox")
        out.append((obj.findtext("name"), [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]))
    return out


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _paper_items(name: str, root) -> list[tuple[str, int, list[list[float]]]]:
    """(image path, concept index, boxes of the concept) for every usable image of a paper dataset under `root`."""
    root = Path(root)
    concepts = PAPER_DATASETS[name][0]
    items = []
    if name == "imagenet":
        for c, concept in enumerate(concepts):
            for img in sorted((root / concept).glob("*.JPEG")) + sorted((root / concept).glob("*.jpg")):
                xml = img.with_suffix(".xml")
                boxes = [b for _, b in _voc_boxes(xml)] if xml.is_file() else []
                items.append((str(img), c, boxes))
    elif name == "dreambooth":
        boxes_file = root / "boxes.json"
        known = json.loads(boxes_file.read_text()) if boxes_file.is_file() else {}
        for c, concept in enumerate(concepts):
            for img in sorted((root / concept).glob("*.jpg")) + sorted((root / concept).glob("*.png")):
                items.append((str(img), c, known.get(concept, {}).get(img.name, [])))
    elif name == "coco":
        ann = json.loads((root / "annotations" / "instances_val2017.json").read_text())
        cat_name = {c["id"]: c["name"] for c in ann["categories"]}
        files = {im["id"]: im["file_name"] for im in ann["images"]}
        per_image: dict[int, list] = {}
        for a in ann["annotations"]:
            x, y, w, h = a["bbox"]
            per_image.setdefault(a["image_id"], []).append((cat_name[a["category_id"]], [x, y, x + w, y + h]))
        for image_id, objs in sorted(per_image.items()):
            label = max(objs, key=lambda o: _area(o[1]))[0]  # labelled by the largest box, as in the paper
            if label in concepts:
                items.append((str(root / "val2017" / files[image_id]), concepts.index(label),
                              [b for n, b in objs if n == label]))
    elif name == "pascal":
        voc_to_concept = {v: k for k, v in _VOC_NAMES.items()}
        for xml in sorted((root / "Annotations").glob("*.xml")):
            objs = [(voc_to_concept.get(n), b) for n, b in _voc_boxes(xml)]
            if not objs:
                continue
            label = max(objs, key=lambda o: _area(o[1]))[0]
            if label in concepts:
                items.append((str(root / "JPEGImages" / (xml.stem + ".jpg")), concepts.index(label),
                              [b for n, b in objs if n == label]))
    return items


SOURCES = {  # where each paper dataset comes from (none of these hosts is reachable from this project's machines)
    "imagenet": "ImageNet-1k (image-net.org, an account is needed): the 10 classes' images with their ILSVRC box "
                ".xml files, one folder per concept",
    "dreambooth": "the DreamBooth dataset (github.com/google/dreambooth, folder dataset/): 4-6 photos per subject",
    "coco": "COCO 2017 (cocodataset.org): val2017 images and annotations_trainval2017's instances_val2017.json",
    "pascal": "PASCAL VOC 2012 (host.robots.ox.ac.uk/pascal/VOC/voc2012): VOCtrainval's Annotations/ and JPEGImages/",
}
PROFILE_DATASETS = {  # the datasets each profile's study runs on (make figures PROFILE=..., vw data check)
    "paper": tuple(PAPER_DATASETS), "paper-random": MINI_DATASETS, "mini": MINI_DATASETS, "tiny": MINI_DATASETS,
}


def data_root(name: str) -> Path:
    """Where a paper dataset is looked for: $VWLIB_DATA_DIR/<name> (default ./data/<name>)."""
    import os

    return Path(os.environ.get(DATA_DIR_ENV, "data")) / name


def check_data(profile: str = "paper") -> list[dict]:
    """Per dataset of `profile`: {"dataset", "root", "status" (ok | missing | incomplete | generated), "detail",
    "obtain"}. Reads file lists and annotations only, no image."""
    rows = []
    for name in PROFILE_DATASETS[profile]:
        if name in MINI_DATASETS:
            rows.append({"dataset": name, "root": "", "status": "generated", "detail": "drawn by vwlib/data/world.py",
                         "obtain": ""})
            continue
        root = data_root(name)
        row = {"dataset": name, "root": str(root), "obtain": f"{SOURCES[name]}; layout: {_LAYOUT[name]}"}
        if not root.is_dir():
            rows.append(row | {"status": "missing", "detail": "no folder"})
            continue
        try:
            items = _paper_items(name, root)
        except (OSError, ValueError, KeyError) as e:
            rows.append(row | {"status": "incomplete", "detail": f"unreadable layout ({type(e).__name__}: {e})"})
            continue
        counts = [sum(it[1] == c for it in items) for c in range(len(PAPER_DATASETS[name][0]))]
        need = FOLDER_MIN_IMAGES if name == "dreambooth" else 8
        short = [f"{c} ({n})" for c, n in zip(PAPER_DATASETS[name][0], counts) if n < need]
        detail = f"{len(counts)} concepts, {min(counts)}-{max(counts)} images each"
        if short:
            rows.append(row | {"status": "incomplete", "detail": f"{detail}; fewer than {need}: {', '.join(short)}"})
        else:
            rows.append(row | {"status": "ok", "detail": detail})
    return rows


def require(name: str) -> None:
    """Fail fast, before any model loads, on an unknown dataset, a paper dataset that is not on this machine, or a
    folder dataset that breaks the folder rules."""
    if is_folder_dataset(name):
        load_folder_dataset(name)
        return
    concept_names(name)
    root = data_root(name)
    if name in PAPER_DATASETS and not root.is_dir():
        raise VWError(f"dataset {name} not found at {root}; put a local copy there ({_LAYOUT[name]}) or set "
                      f"${DATA_DIR_ENV}")


def load_paper_dataset(name: str, root=None, n_train: int = 8, n_val: int = 10, seed: int = 0) -> ConceptDataset:
    """One of the paper's datasets from a local copy: 8 training images per concept drawn without replacement
    (seeded), the next `n_val` for validation (DreamBooth: the folder rule). Images without boxes get the whole
    image as their box."""
    if name not in PAPER_DATASETS:
        raise _unknown_dataset(name)
    root = Path(root or data_root(name))
    if not root.is_dir():
        raise VWError(f"dataset {name} not found at {root}; put a local copy there ({_LAYOUT[name]}) or set "
                      f"${DATA_DIR_ENV}")
    concepts, anchors = PAPER_DATASETS[name]
    items = _paper_items(name, root)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(len(concepts)):
        mine = [it for it in items if it[1] == c]
        c_train, need = n_train, n_train
        if name == "dreambooth":  # 4-6 photos per subject: the folder rule, ceil(n / 5) of them held out
            c_train, need = len(mine) - held_out_count(len(mine)), FOLDER_MIN_IMAGES
        if len(mine) < need:
            raise VWError(f"dataset {name}: concept {concepts[c]!r} has {len(mine)} images under {root}, needs at "
                          f"least {need}")
        order = rng.permutation(len(mine))
        for k, i in enumerate(order[: c_train + n_val]):
            path, label, boxes = mine[i]
            image = Image.open(path).convert("RGB")
            ex = Example(image, label, boxes or [[0.0, 0.0, float(image.width), float(image.height)]], concepts[label])
            (train if k < c_train else val).append(ex)
    return ConceptDataset(name, list(concepts), list(anchors), train, val, meta={"root": str(root), "seed": seed})


# --------------------------------------------------------------------------------------------------------------
# Your own concepts: a folder with one sub-folder of images per concept
# --------------------------------------------------------------------------------------------------------------

FOLDER_MIN_CONCEPTS, FOLDER_MIN_IMAGES = 2, 3  # at least 2 images to train on and 1 held out
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_DATASET_NAMES = (*MINI_DATASETS, *PAPER_DATASETS)


def is_folder_dataset(name: str) -> bool:
    """A dataset name that is a folder on disk (and not one of the named datasets)."""
    return name not in _DATASET_NAMES and Path(name).is_dir()


def held_out_count(n: int) -> int:
    """Images held out of a concept with `n` images: ceil(n / 5), at least 1 (the last ones in file-name order)."""
    return max(1, math.ceil(n / 5))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _concept_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and _images_in(d))


def load_folder_dataset(path: str) -> ConceptDataset:
    """Your own concepts from `path`/<concept>/<images> (see the module docstring for the rules and the split).
    Every rule broken is a VWError naming the folder and the fix."""
    root = Path(path)
    stamp = max((p.stat().st_mtime_ns for p in root.rglob("*")), default=0)  # a changed folder is read again
    return _load_folder(str(root.resolve()), stamp)


@functools.lru_cache(maxsize=4)
def _load_folder(root_name: str, stamp: int) -> ConceptDataset:
    root = Path(root_name)
    folders = _concept_folders(root)
    if len(folders) < FOLDER_MIN_CONCEPTS:
        raise VWError(f"folder dataset {root}: {len(folders)} concept folder(s) with images, needs at least "
                      f"{FOLDER_MIN_CONCEPTS} (one sub-folder of {', '.join(IMAGE_SUFFIXES)} images per concept)")
    concepts = [d.name for d in folders]
    train, val = [], []
    for label, folder in enumerate(folders):
        images = _images_in(folder)
        if len(images) < FOLDER_MIN_IMAGES:
            raise VWError(f"folder dataset {root}: concept {folder.name!r} has {len(images)} image(s), needs at least "
                          f"{FOLDER_MIN_IMAGES} ({FOLDER_MIN_IMAGES - 1} to train on, 1 held out); add images to "
                          f"{folder}")
        boxes = _boxes_file(folder)
        n_val = held_out_count(len(images))
        for k, image_path in enumerate(images):
            image = Image.open(image_path).convert("RGB")
            own = boxes.get(image_path.name) or [[0.0, 0.0, float(image.width), float(image.height)]]
            ex = Example(image, label, [list(map(float, b)) for b in own], folder.name.replace("_", " "))
            (val if k >= len(images) - n_val else train).append(ex)
    return ConceptDataset(str(root), concepts, list(concepts), train, val, meta={"root": str(root), "folder": True})


def _boxes_file(folder: Path) -> dict:
    path = folder / "boxes.json"
    if not path.is_file():
        return {}
    try:
        boxes = json.loads(path.read_text())
        ok = isinstance(boxes, dict) and all(isinstance(v, list) and all(len(b) == 4 for b in v)
                                             for v in boxes.values())
    except (json.JSONDecodeError, TypeError):
        ok = False
    if not ok:
        raise VWError(f"{path}: must map image file names to lists of [x0, y0, x1, y1] pixel boxes, e.g. "
                      f'{{"01.jpg": [[10, 20, 200, 180]]}}')
    return boxes


def folder_summary(ds: ConceptDataset) -> str:
    """One line: the concepts of a folder dataset with their train / held-out image counts."""
    counts = [(c, sum(e.label == i for e in ds.train), sum(e.label == i for e in ds.val))
              for i, c in enumerate(ds.concepts)]
    return (f"{ds.name}: {len(ds.concepts)} concepts (train + held out, the last ceil(n/5) of each in file-name "
            f"order held out): " + ", ".join(f"{c} {a}+{b}" for c, a, b in counts))
