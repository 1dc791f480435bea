"""Your own concepts: a folder with one sub-folder of images per concept, trained with every task end to end."""

import json
import subprocess
import sys

import pytest

from vwlib.data.datasets import held_out_count, load_dataset
from vwlib.errors import VWError
from vwlib.store import ResultStore


def _write_folder(root, per_concept=(4, 3), names=("star", "heart")):
    """Mini-objects images of `names` as PNG files, `per_concept` images each, with boxes for the first."""
    ds = load_dataset("mini-objects")
    for name, n in zip(names, per_concept):
        folder = root / name
        folder.mkdir(parents=True)
        examples = [e for e in ds.train + ds.val if e.label == ds.concept_index(name.split("_")[-1])][:n]
        for k, e in enumerate(examples):
            e.image.save(folder / f"{k:02d}.png")
        if name == names[0]:
            (folder / "boxes.json").write_text(json.dumps({f"{k:02d}.png": e.boxes for k, e in enumerate(examples)}))
    return root


def test_split_rule_boxes_and_concepts(tmp_path):
    root = _write_folder(tmp_path / "photos", per_concept=(6, 3))
    ds = load_dataset(str(root))
    assert ds.concepts == ["heart", "star"] and ds.anchors == ["heart", "star"]
    assert [held_out_count(n) for n in (3, 5, 6, 10)] == [1, 1, 2, 2]
    star, heart = ds.concept_index("star"), ds.concept_index("heart")
    assert sum(e.label == star for e in ds.train) == 4 and sum(e.label == star for e in ds.val) == 2
    assert sum(e.label == heart for e in ds.train) == 2 and sum(e.label == heart for e in ds.val) == 1
    assert all(e.boxes != [[0.0, 0.0, 64.0, 64.0]] for e in ds.val if e.label == star)  # from boxes.json
    assert all(e.boxes == [[0.0, 0.0, 64.0, 64.0]] for e in ds.val if e.label == heart)  # the whole image


@pytest.mark.parametrize("setup,message", [
    (dict(per_concept=(4,), names=("star",)), r"1 concept folder\(s\) with images, needs at least 2"),
    (dict(per_concept=(4, 2)), r"concept 'heart' has 2 image\(s\), needs at least 3"),
])
def test_folder_rules_are_one_line_errors(setup, message, tmp_path):
    root = _write_folder(tmp_path / "photos", **setup)
    with pytest.raises(VWError, match=message):
        load_dataset(str(root))


def test_cli_learns_words_from_a_folder_with_every_task(tmp_path):
    root = _write_folder(tmp_path / "photos")
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "vwlib", "train", "--profile", "tiny", "--dataset", str(root),
                           "--task", "classification", "detection", "generation", "--steps", "2",
                           "--deltas", "0.5", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "2 concepts" in proc.stdout and "heart 2+1" in proc.stdout and "star 3+1" in proc.stdout
    table = ResultStore(out).table()
    assert sorted(table.evaluated_on) == ["classification", "classification", "detection", "detection",
                                          "generation", "generation"]
    assert (table.status == "ok").all() and set(table.dataset) == {str(root.resolve())}
    clf = table[table.evaluated_on == "classification"]
    assert clf.accuracy.between(0, 1).all()  # a 2-way vote over the folder's own concepts


def test_a_folder_name_that_is_not_one_token_suggests_its_pieces(tmp_path):
    root = _write_folder(tmp_path / "photos", names=("star", "shiny_zxqv_heart"))
    proc = subprocess.run([sys.executable, "-m", "vwlib", "train", "--profile", "tiny", "--dataset", str(root),
                           "--anchors", "grid", "--out", str(tmp_path / "runs")], capture_output=True, text=True)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "'shiny_zxqv_heart' is" in err[0] and "single-token words in it: shiny, heart" in err[0]
    assert not (tmp_path / "runs").exists()
