import numpy as np
import pytest

from vwlib import VWError, clip_tokenizer
from vwlib.data.datasets import MINI_DATASETS, load_dataset


@pytest.mark.parametrize("name", MINI_DATASETS)
def test_mini_dataset_shape(name):
    ds = load_dataset(name)
    assert len(ds.concepts) == 10 and len(ds.anchors) == 10 and len(set(ds.anchors)) == 10
    tok = clip_tokenizer()
    for concept, anchor in zip(ds.concepts, ds.anchors):
        assert len(tok(anchor, add_special_tokens=False)["input_ids"]) == 1
        assert anchor in concept.split("_")  # anchors derive from the concept names, as in the paper
    for i in range(10):
        assert sum(e.label == i for e in ds.train) == 8
    assert len(ds.val) == 100
    for e in ds.val:
        assert e.image.size == (64, 64)
        assert e.boxes and all(0 <= b[0] < b[2] <= 64 and 0 <= b[1] < b[3] <= 64 for b in e.boxes)


def test_datasets_are_deterministic_and_splits_disjoint():
    a, b = load_dataset("mini-objects"), load_dataset("mini-objects", seed=0)
    assert np.array_equal(np.asarray(a.train[3].image), np.asarray(b.train[3].image))
    train = {np.asarray(e.image).tobytes() for e in a.train}
    assert not train & {np.asarray(e.image).tobytes() for e in a.val}


def test_scenes_are_labelled_by_their_largest_object():
    ds = load_dataset("mini-scenes")
    for e in ds.val:
        assert e.scene.objects[e.scene.largest()].shape == ds.concepts[e.label]
        assert len(e.scene.objects) >= 2


def test_instances_are_specific_objects():
    ds = load_dataset("mini-instances")
    for e in ds.train:
        o = e.scene.objects[0]
        assert "_".join([o.colour, o.pattern, o.shape]) == ds.concepts[e.label]


def test_unknown_dataset_and_concept():
    with pytest.raises(VWError, match="unknown dataset 'imagenet-mini'; choose one of mini-objects"):
        load_dataset("imagenet-mini")
    with pytest.raises(VWError, match="unknown concept 'sombrero' in mini-objects; choose one of circle"):
        load_dataset("mini-objects").concept_index("sombrero")
