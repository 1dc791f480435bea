import numpy as np
import pytest

from vwlib import clip_tokenizer
from vwlib.data.world import (
    BACKGROUNDS,
    COLOURS,
    PATTERNS,
    SHAPES,
    ObjectSpec,
    Scene,
    render,
    sample_scene,
    sample_single,
)


def test_every_world_word_is_one_clip_token():
    tok = clip_tokenizer()
    for word in [*SHAPES, *COLOURS, *PATTERNS, "small", "large", *BACKGROUNDS]:
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_render_is_deterministic_and_seeded():
    a = render(sample_single(np.random.default_rng(5)), 32)
    b = render(sample_single(np.random.default_rng(5)), 32)
    c = render(sample_single(np.random.default_rng(6)), 32)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert a.size == (32, 32) and a.mode == "RGB"


@pytest.mark.parametrize("shape", SHAPES)
def test_box_encloses_the_drawn_object(shape):
    obj = ObjectSpec(shape, "red", cx=0.45, cy=0.55, extent=0.5, angle=10)
    scene = Scene((obj,), "light", 0.0, 0)
    img = np.asarray(render(scene, 64)).astype(float)
    drawn = np.linalg.norm(img - np.array(BACKGROUNDS["light"]), axis=2) > 60  # clearly object pixels
    ys, xs = np.nonzero(drawn)
    x0, y0, x1, y1 = scene.boxes(64)[0]
    assert xs.min() >= x0 - 1.5 and xs.max() <= x1 + 0.5 and ys.min() >= y0 - 1.5 and ys.max() <= y1 + 0.5
    # and it is tight: the drawn pixels reach within 2 px of every side
    assert xs.min() <= x0 + 2 and xs.max() >= x1 - 3 and ys.min() <= y0 + 2 and ys.max() >= y1 - 3


def test_caption_names_the_attributes():
    o = ObjectSpec("star", "red", "striped", "large")
    assert Scene((o,), "dark").caption() == "a large red striped star on a dark background"
    two = Scene((o, ObjectSpec("circle", "orange")), "grass")
    assert two.caption() == "a large red striped star and an orange circle on grass"


def test_scene_objects_do_not_overlap_and_contrast_with_background():
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = sample_scene(rng, (2, 4))
        boxes = s.boxes(64)
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        for o in s.objects:
            assert np.linalg.norm(np.subtract(COLOURS[o.colour], BACKGROUNDS[s.background])) >= 90


def test_largest_object_is_found():
    s = Scene((ObjectSpec("star", "red", extent=0.2), ObjectSpec("ring", "blue", extent=0.4, cx=0.2)), "light")
    assert s.largest() == 1
