"""The paper's datasets in their real layouts (small fixtures): vw data check, the relaxed DreamBooth minimum, and
`make figures PROFILE=paper` refusing a missing dataset before any notebook runs."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from vwlib.data.datasets import PAPER_DATASETS, check_data, load_dataset
from vwlib.errors import VWError
from vwlib.study import notebooks

VOC = {"airplane": "aeroplane"}


def _jpg(path, size=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (200, 30, 30)).save(path)


def _voc_xml(path, name, box=(2, 2, 12, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
                    f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object></annotation>")


def make_paper_data(root, per_concept=8, dreambooth=4):
    """imagenet/<concept>/*.JPEG (+ .xml), dreambooth/<subject>/*.jpg, coco/annotations + val2017, pascal VOC."""
    for c in PAPER_DATASETS["imagenet"][0]:
        for k in range(per_concept):
            _jpg(root / "imagenet" / c / f"{k}.JPEG")
        _voc_xml(root / "imagenet" / c / "0.xml", c)
    for s in PAPER_DATASETS["dreambooth"][0]:
        for k in range(dreambooth):
            _jpg(root / "dreambooth" / s / f"{k:02d}.jpg")
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(PAPER_DATASETS["coco"][0])]
    images, anns = [], []
    for i, cat in enumerate(cats * per_concept):
        images.append({"id": i, "file_name": f"{i:012d}.jpg"})
        anns.append({"image_id": i, "category_id": cat["id"], "bbox": [1, 1, 10, 10]})
        _jpg(root / "coco" / "val2017" / f"{i:012d}.jpg")
    (root / "coco" / "annotations").mkdir(parents=True)
    (root / "coco" / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"categories": cats, "images": images, "annotations": anns}))
    for i, c in enumerate(PAPER_DATASETS["pascal"][0] * per_concept):
        _voc_xml(root / "pascal" / "Annotations" / f"{i:06d}.xml", VOC.get(c, c))
        _jpg(root / "pascal" / "JPEGImages" / f"{i:06d}.jpg")
    return root


def test_data_check_reports_present_missing_and_short(tmp_path, monkeypatch):
    monkeypatch.setenv("VWLIB_DATA_DIR", str(make_paper_data(tmp_path / "data")))
    assert [(r["dataset"], r["status"]) for r in check_data("paper")] == [
        ("imagenet", "ok"), ("dreambooth", "ok"), ("coco", "ok"), ("pascal", "ok")]
    import shutil

    shutil.rmtree(tmp_path / "data" / "coco")
    for f in list((tmp_path / "data" / "imagenet" / "harp").glob("*.JPEG"))[:3]:
        f.unlink()
    rows = {r["dataset"]: r for r in check_data("paper")}
    assert rows["coco"]["status"] == "missing" and "cocodataset.org" in rows["coco"]["obtain"]
    assert rows["imagenet"]["status"] == "incomplete" and "fewer than 8: harp (5)" in rows["imagenet"]["detail"]
    proc = subprocess.run([sys.executable, "-m", "vwlib", "data", "check"], capture_output=True, text=True)
    assert proc.returncode == 1 and "2 of 4 datasets not ready" in proc.stdout and "get it:" in proc.stdout
    assert [r["status"] for r in check_data("mini")] == ["generated"] * 3


def test_dreambooth_subjects_of_four_photos_load(tmp_path, monkeypatch):
    monkeypatch.setenv("VWLIB_DATA_DIR", str(make_paper_data(tmp_path / "data", dreambooth=4)))
    ds = load_dataset("dreambooth")
    assert len(ds.train) == 10 * 3 and len(ds.val) == 10 * 1  # ceil(4 / 5) = 1 held out per subject
    ds = load_dataset("imagenet")
    assert len(ds.train) == 10 * 8 and ds.train[0].boxes  # 8 to train on; boxes from the .xml or the whole image


def test_paper_notebooks_use_the_papers_datasets_and_refuse_a_missing_one_first(tmp_path, monkeypatch):
    monkeypatch.setenv("VWLIB_DATA_DIR", str(make_paper_data(tmp_path / "data")))
    params = notebooks.profile_parameters("paper")
    assert params["datasets"] == ["imagenet", "dreambooth", "coco", "pascal"] and params["concept"] == "strawberry"
    assert notebooks.profile_parameters("mini") == {}
    monkeypatch.setenv("VWLIB_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(notebooks, "run_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    with pytest.raises(VWError, match="dataset imagenet not found at .*nowhere/imagenet"):
        notebooks.run_notebooks(profile="paper", out_dir=tmp_path / "build")
