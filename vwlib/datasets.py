"""Concept datasets: 10 concepts, 10 anchor words, 8 training images per concept, a validation split with boxes.

The mini datasets mirror the paper's four in flavour:

| dataset          | like        | concepts                                             | anchors                 |
|------------------|-------------|------------------------------------------------------|-------------------------|
| `mini-objects`   | ImageNet    | the 10 shapes, any colour/pattern/size               | the shape names         |
| `mini-instances` | DreamBooth  | 10 specific objects (colour + pattern + shape) that no single word names | one word of each name |
| `mini-scenes`    | COCO / VOC  | cluttered 1–4 object scenes, labelled by the largest object's shape | the shape names |

Usage:
    ds = load_dataset("mini-instances")            # ConceptDataset, deterministic
    ds.concepts[0], ds.anchors[0]                   # "red_striped_heart", "heart"
    ds.train[0].image, ds.val[0].boxes              # PIL 64x64, [[x0, y0, x1, y1]] of the concept's objects
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .errors import VWError
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


def concept_names(name: str) -> tuple[list[str], list[str]]:
    """(10 concepts, 10 index-aligned anchors) of a dataset, without loading any image (plans, dry runs)."""
    if name in PAPER_DATASETS:
        return list(PAPER_DATASETS[name][0]), list(PAPER_DATASETS[name][1])
    if name == "mini-instances":
        return list(INSTANCES), [a for a, _ in INSTANCES.values()]
    if name in MINI_DATASETS:
        return list(SHAPES), list(SHAPES)
    raise VWError(f"unknown dataset {name!r}; choose one of {', '.join([*MINI_DATASETS, *PAPER_DATASETS])}")


@functools.lru_cache(maxsize=8)
def load_mini_dataset(name: str, n_train: int = 8, n_val: int = 10, seed: int = 0) -> ConceptDataset:
    if name not in MINI_DATASETS:
        raise VWError(f"unknown dataset {name!r}; choose one of {', '.join([*MINI_DATASETS, *PAPER_DATASETS])}")
    concepts, anchors = concept_names(name)
    base = _SEED_OFFSET[name] + 10 * seed
    # train and val come from disjoint seeds: no image is in both
    return ConceptDataset(name, concepts, anchors, _examples(name, concepts, n_train, base + 1),
                          _examples(name, concepts, n_val, base + 2), meta={"image_size": IMAGE_SIZE, "seed": seed})


def load_dataset(name: str, **kwargs) -> ConceptDataset:
    """A dataset by name: the mini datasets (generated), or the paper's four from local copies."""
    if name in PAPER_DATASETS:
        return load_paper_dataset(name, **kwargs)
    return load_mini_dataset(name, **kwargs)


# --------------------------------------------------------------------------------------------------------------
# The paper's four datasets, from local copies (no machine here downloads them)
# --------------------------------------------------------------------------------------------------------------

PAPER_DATASETS = {  # SPEC §4: 10 concepts and 10 index-aligned anchors each
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
DATA_ENV = "VWLIB_DATA_DIR"  # holds imagenet/, dreambooth/, coco/, pascal/
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
    import json
    from pathlib import Path

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


def require(name: str) -> None:
    """Fail fast, before any model loads, on an unknown dataset or a paper dataset that is not on this machine."""
    import os
    from pathlib import Path

    concept_names(name)
    root = Path(os.environ.get(DATA_ENV, "data")) / name
    if name in PAPER_DATASETS and not root.is_dir():
        raise VWError(f"dataset {name} not found at {root}; put a local copy there ({_LAYOUT[name]}) or set "
                      f"${DATA_ENV}")


def load_paper_dataset(name: str, root=None, n_train: int = 8, n_val: int = 10, seed: int = 0) -> ConceptDataset:
    """One of the paper's datasets from a local copy: 8 training images per concept drawn without replacement
    (seeded), the next `n_val` for validation. Images without boxes get the whole image as their box."""
    import os
    from pathlib import Path

    if name not in PAPER_DATASETS:
        raise VWError(f"unknown dataset {name!r}; choose one of {', '.join([*MINI_DATASETS, *PAPER_DATASETS])}")
    root = Path(root or Path(os.environ.get(DATA_ENV, "data")) / name)
    if not root.is_dir():
        raise VWError(f"dataset {name} not found at {root}; put a local copy there ({_LAYOUT[name]}) or set "
                      f"${DATA_ENV}")
    concepts, anchors = PAPER_DATASETS[name]
    items = _paper_items(name, root)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(len(concepts)):
        mine = [it for it in items if it[1] == c]
        if len(mine) < n_train:
            raise VWError(f"dataset {name}: concept {concepts[c]!r} has {len(mine)} images under {root}, needs at "
                          f"least {n_train} for training")
        order = rng.permutation(len(mine))
        for k, i in enumerate(order[: n_train + n_val]):
            path, label, boxes = mine[i]
            image = Image.open(path).convert("RGB")
            ex = Example(image, label, boxes or [[0.0, 0.0, float(image.width), float(image.height)]], concepts[label])
            (train if k < n_train else val).append(ex)
    return ConceptDataset(name, list(concepts), list(anchors), train, val, meta={"root": str(root), "seed": seed})
