"""The paper's dataset loaders, each on a tiny fixture written by the test in the dataset's own layout."""

import json

import pytest
from PIL import Image

from vwlib import VWError
from vwlib.data.datasets import PAPER_DATASETS, load_dataset


def _img(path, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 30)).save(path)


def _voc_xml(path, objects):
    body = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation>{body}</annotation>")


def test_imagenet_class_folders_with_box_files(tmp_path):
    for concept in PAPER_DATASETS["imagenet"][0]:
        for k in range(3):
            _img(tmp_path / concept / f"{k}.JPEG")
            _voc_xml(tmp_path / concept / f"{k}.xml", [("n0000", [1, 2, 20, 25])])
    ds = load_dataset("imagenet", root=tmp_path, n_train=2, n_val=1)
    assert ds.anchors[8] == "hat" and ds.concepts[9] == "scuba diver"
    assert len(ds.train) == 20 and len(ds.val) == 10
    assert ds.train[0].boxes == [[1.0, 2.0, 20.0, 25.0]]


def test_dreambooth_subject_folders_and_optional_boxes(tmp_path):
    for concept in PAPER_DATASETS["dreambooth"][0]:
        for k in range(3):  # DreamBooth subjects have 4-6 photos; 3 is the least that loads (2 train, 1 held out)
            _img(tmp_path / concept / f"{k:02d}.jpg")
    (tmp_path / "boxes.json").write_text(json.dumps({"cat2": {"00.jpg": [[3, 3, 9, 9]]}}))
    ds = load_dataset("dreambooth", root=tmp_path, n_train=2, n_val=1)
    assert len(ds.train) == 20 and len(ds.val) == 10
    cat = {tuple(map(tuple, e.boxes)) for e in ds.train + ds.val if e.label == 0}
    assert cat == {((3, 3, 9, 9),), ((0.0, 0.0, 40.0, 30.0),)}  # no box given: the whole image


def test_coco_is_labelled_by_the_largest_box(tmp_path):
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(PAPER_DATASETS["coco"][0] + ["giraffe"])]
    images, anns = [], []
    for i in range(10 * 2 + 1):
        name = f"{i:04d}.jpg"
        _img(tmp_path / "val2017" / name)
        images.append({"id": i, "file_name": name})
        label = 11 if i == 20 else i % 10 + 1  # the last image's largest object is a giraffe: not in the dataset
        anns.append({"image_id": i, "category_id": label, "bbox": [0, 0, 30, 20]})
        anns.append({"image_id": i, "category_id": (i + 1) % 10 + 1, "bbox": [0, 0, 5, 5]})  # smaller distractor
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"categories": cats, "images": images, "annotations": anns}))
    ds = load_dataset("coco", root=tmp_path, n_train=2, n_val=0)
    assert len(ds.train) == 20
    for e in ds.train:
        assert e.boxes == [[0, 0, 30, 20]]


def test_pascal_voc_xml(tmp_path):
    for i, concept in enumerate(PAPER_DATASETS["pascal"][0] * 2):
        voc = "aeroplane" if concept == "airplane" else concept
        _img(tmp_path / "JPEGImages" / f"{i:04d}.jpg")
        _voc_xml(tmp_path / "Annotations" / f"{i:04d}.xml", [(voc, [0, 0, 30, 25]), ("dog", [0, 0, 4, 4])])
    ds = load_dataset("pascal", root=tmp_path, n_train=2, n_val=0)
    assert sorted(e.label for e in ds.train) == sorted(list(range(10)) * 2)


def test_missing_dataset_names_the_layout(tmp_path):
    with pytest.raises(VWError, match="dataset coco not found at .*annotations/instances_val2017.json"):
        load_dataset("coco", root=tmp_path / "nope")
    (tmp_path / "imagenet").mkdir()
    with pytest.raises(VWError, match="concept 'strawberry' has 0 images"):
        load_dataset("imagenet", root=tmp_path / "imagenet")
