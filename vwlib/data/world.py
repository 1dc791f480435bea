"""The mini world: procedurally drawn objects with nameable attributes, single-object images and cluttered scenes.

World card
----------
- **Objects** have a *shape* (circle, square, triangle, star, heart, cross, ring, diamond, moon, arrow), a *colour*
  (red, green, blue, yellow, orange, purple, pink, brown, white, black, gray), a *pattern* (plain, striped, dotted)
  and a *size* (small, large, or unnamed medium). Every attribute word is a single CLIP BPE token.
- **Backgrounds** are a flat or gently graded field: light, dark, sky, grass or sand, chosen to contrast with the
  objects on them.
- **Images**: a single object (objects and instances) or a scene of 1–4 non-overlapping objects (scenes), each with
  its ground-truth box in pixels (x0, y0, x1, y1).
- **Captions** in plain English name what is drawn: "a large red striped star on a dark background",
  "a blue circle and a small dotted yellow moon on grass".
Everything is a pure function of a seed: `render(spec, size)` draws the same pixels every time.

Usage:
    from vwlib.data.world import ObjectSpec, Scene, render, sample_scene
    rng = np.random.default_rng(0)
    scene = sample_scene(rng, n_objects=(1, 4))        # Scene(objects=[...], background="sky")
    image = render(scene, size=64)                      # PIL.Image 64x64 RGB
    scene.caption(), scene.boxes(64)                    # "a ...", [[x0, y0, x1, y1], ...]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "ring", "diamond", "moon", "arrow")
COLOURS = {
    "red": (220, 30, 35), "green": (40, 170, 60), "blue": (35, 75, 225), "yellow": (245, 215, 30),
    "orange": (245, 135, 20), "purple": (135, 45, 185), "pink": (245, 130, 190), "brown": (125, 75, 35),
    "white": (245, 245, 245), "black": (20, 20, 20), "gray": (135, 135, 135),
}
PATTERNS = ("plain", "striped", "dotted")
SIZES = ("small", "medium", "large")  # "medium" is never said in a caption
BACKGROUNDS = {
    "light": (225, 225, 218), "dark": (45, 45, 55), "sky": (150, 200, 240), "grass": (120, 175, 95),
    "sand": (215, 195, 150),
}
# Objects must stand out: no object colour on a background this close to it (Euclidean RGB distance).
_MIN_CONTRAST = 90.0
_SUPERSAMPLE = 4  # draw at 4x and downsample: smooth edges at 32 px


@dataclass(frozen=True)
class ObjectSpec:
    """One object. `cx`, `cy`, `extent` are fractions of the image side; `angle` in degrees; `tint` jitters colour."""

    shape: str
    colour: str
    pattern: str = "plain"
    size: str = "medium"
    cx: float = 0.5
    cy: float = 0.5
    extent: float = 0.6  # side of the object's bounding square, as a fraction of the image side
    angle: float = 0.0
    tint: tuple[int, int, int] = (0, 0, 0)

    def phrase(self) -> str:
        words = [] if self.size == "medium" else [self.size]
        words.append(self.colour)
        if self.pattern != "plain":
            words.append(self.pattern)
        words.append(self.shape)
        return " ".join(words)

    def box(self, size: int) -> list[float]:
        """Pixel box [x0, y0, x1, y1] of the drawn object in a `size` x `size` image."""
        pts = _outline(self, float(size))
        xs, ys = [p[0] for poly in pts for p in poly], [p[1] for poly in pts for p in poly]
        return [max(0.0, min(xs)), max(0.0, min(ys)), min(float(size), max(xs)), min(float(size), max(ys))]


@dataclass(frozen=True)
class Scene:
    objects: tuple[ObjectSpec, ...]
    background: str = "light"
    shade: float = 0.0  # vertical gradient strength of the background, -1..1
    noise_seed: int = 0

    def caption(self, with_background: bool = True) -> str:
        phrases = [_article(o.phrase()) + " " + o.phrase() for o in self.objects]
        text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        if with_background:
            text += " on " + ("grass" if self.background == "grass" else
                              "sand" if self.background == "sand" else
                              f"a {self.background} background")
        return text

    def boxes(self, size: int) -> list[list[float]]:
        return [o.box(size) for o in self.objects]

    def largest(self) -> int:
        """Index of the object with the largest box (COCO/VOC-style images are labelled by it)."""
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in self.boxes(256)]
        return int(np.argmax(areas))


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


# --------------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------------

_EXTENT = {"small": (0.40, 0.50), "medium": (0.55, 0.68), "large": (0.72, 0.88)}
_SCENE_EXTENT = {"small": (0.18, 0.24), "medium": (0.26, 0.34), "large": (0.36, 0.46)}


def contrasting_backgrounds(colours: list[str]) -> list[str]:
    """Backgrounds on which every colour in `colours` stands out."""
    return [b for b, rgb in BACKGROUNDS.items()
            if all(np.linalg.norm(np.subtract(COLOURS[c], rgb)) >= _MIN_CONTRAST for c in colours)]


def sample_object(rng: np.random.Generator, shape: str | None = None, colour: str | None = None,
                  pattern: str | None = None, size: str | None = None, scene: bool = False) -> ObjectSpec:
    """An object with the given attributes; the others drawn at random. Position is centred-ish (see sample_scene)."""
    size = size or str(rng.choice(SIZES))
    lo, hi = (_SCENE_EXTENT if scene else _EXTENT)[size]
    extent = float(rng.uniform(lo, hi))
    margin = extent / 2 + 0.02
    return ObjectSpec(
        shape=shape or str(rng.choice(SHAPES)),
        colour=colour or str(rng.choice(list(COLOURS))),
        pattern=pattern or str(rng.choice(PATTERNS, p=[0.5, 0.25, 0.25])),
        size=size,
        cx=float(rng.uniform(margin, 1 - margin)), cy=float(rng.uniform(margin, 1 - margin)),
        extent=extent,
        angle=float(rng.uniform(-20, 20)),
        tint=tuple(int(t) for t in rng.integers(-18, 19, size=3)),
    )


def sample_single(rng: np.random.Generator, **attributes) -> Scene:
    """One object (attributes fixed where given) on a background it contrasts with."""
    obj = sample_object(rng, **attributes)
    return Scene((obj,), str(rng.choice(contrasting_backgrounds([obj.colour]))), float(rng.uniform(-0.4, 0.4)),
                 int(rng.integers(1 << 30)))


def sample_scene(rng: np.random.Generator, n_objects: tuple[int, int] = (1, 4), first: dict | None = None,
                 max_tries: int = 200) -> Scene:
    """1–4 non-overlapping objects; `first` fixes attributes of the first object (e.g. the labelled, largest one)."""
    n = int(rng.integers(n_objects[0], n_objects[1] + 1))
    objects: list[ObjectSpec] = []
    for i in range(n):
        for _ in range(max_tries):
            o = sample_object(rng, scene=True, **(first if i == 0 and first else {}))
            if all(_separated(o, p) for p in objects):
                objects.append(o)
                break
    colours = [o.colour for o in objects]
    backgrounds = contrasting_backgrounds(colours) or contrasting_backgrounds(colours[:1])
    return Scene(tuple(objects), str(rng.choice(backgrounds)), float(rng.uniform(-0.4, 0.4)),
                 int(rng.integers(1 << 30)))


def _separated(a: ObjectSpec, b: ObjectSpec, gap: float = 0.02) -> bool:
    """True when the drawn boxes (rotation included) are at least `gap` of the image side apart."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box(1), b.box(1)
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


# --------------------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------------------


def render(scene: Scene, size: int = 64) -> Image.Image:
    """Draw `scene` as a `size` x `size` RGB image (deterministic)."""
    big = size * _SUPERSAMPLE
    base = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    ramp = np.linspace(-1, 1, big, dtype=np.float32)[:, None, None] * scene.shade * 25
    canvas = np.clip(base[None, None, :] + ramp + np.zeros((big, big, 3), np.float32), 0, 255)
    img = Image.fromarray(canvas.astype(np.uint8))
    for obj in scene.objects:
        _draw_object(img, obj, big)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    # A little sensor noise, so no two images are pixel-identical and models cannot key on flat colour.
    noise = np.random.default_rng(scene.noise_seed).normal(0, 3.0, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))


def _draw_object(img: Image.Image, obj: ObjectSpec, big: int) -> None:
    rgb = np.clip(np.add(COLOURS[obj.colour], obj.tint), 0, 255)
    mask = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(mask)
    polys = _outline(obj, float(big))
    if obj.shape == "ring":  # outer disc minus inner disc
        draw.polygon(polys[0], fill=255)
        draw.polygon(polys[1], fill=0)
    else:
        for poly in polys:
            draw.polygon(poly, fill=255)
    fill = np.broadcast_to(rgb.astype(np.uint8), (big, big, 3)).copy()
    if obj.pattern != "plain":
        # The pattern is drawn in a second shade of the object's colour (lighter for dark colours, darker for light
        # ones) so that the silhouette, which carries the shape, stays whole at 32 px.
        second = rgb * 0.45 + (255 * 0.55 if rgb.mean() < 150 else 0)
        fill[_pattern_mask(obj, big)] = second.astype(np.uint8)
    img.paste(Image.fromarray(fill), (0, 0), mask)


def _pattern_mask(obj: ObjectSpec, big: int) -> np.ndarray:
    """[big, big] bool: True where the pattern's second shade is drawn."""
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    period = max(6.0, obj.extent * big / 3.0)
    theta = math.radians(obj.angle + 45)
    if obj.pattern == "striped":
        u = (xx * math.cos(theta) + yy * math.sin(theta)) / period
        return (u - np.floor(u)) < 0.5
    u, v = (xx - obj.cx * big) / period, (yy - obj.cy * big) / period  # dotted: round dots on a grid
    return np.hypot(u - np.round(u), v - np.round(v)) < 0.25


def _outline(obj: ObjectSpec, side: float) -> list[list[tuple[float, float]]]:
    """Polygons (in pixels of a `side`-px image) whose union is the object; for a ring: [outer, inner]."""
    cx, cy, r = obj.cx * side, obj.cy * side, obj.extent * side / 2
    unit = _UNIT_SHAPES[obj.shape]
    a = math.radians(obj.angle)
    ca, sa = math.cos(a), math.sin(a)
    return [[(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in poly] for poly in unit]


def _circle(n: int = 48, radius: float = 1.0, dx: float = 0.0) -> list[tuple[float, float]]:
    return [(dx + radius * math.cos(2 * math.pi * k / n), radius * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    out = []
    for k in range(2 * points):
        rad = 1.0 if k % 2 == 0 else inner
        t = math.pi * k / points - math.pi / 2
        out.append((rad * math.cos(t), rad * math.sin(t)))
    return out


def _heart(n: int = 60) -> list[tuple[float, float]]:
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x / 17.0, (y + 2.5) / 17.0))
    return pts


def _moon(n: int = 40) -> list[tuple[float, float]]:
    # A crescent: the outer arc of a unit circle, back along the arc of a shifted circle.
    outer = [(math.cos(t), math.sin(t)) for t in np.linspace(math.pi / 2, 3 * math.pi / 2, n)]
    inner = [(0.45 * math.cos(t) - 0.15, 0.98 * math.sin(t)) for t in np.linspace(3 * math.pi / 2, math.pi / 2, n)]
    return [(x + 0.25, y) for x, y in outer + inner]


_UNIT_SHAPES: dict[str, list[list[tuple[float, float]]]] = {
    "circle": [_circle()],
    "square": [[(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]],
    "triangle": [[(0.0, -1.0), (0.95, 0.8), (-0.95, 0.8)]],
    "star": [_star()],
    "heart": [_heart()],
    "cross": [[(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
               (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]],
    "ring": [_circle(), _circle(radius=0.55)],
    "diamond": [[(0.0, -1.0), (0.7, 0.0), (0.0, 1.0), (-0.7, 0.0)]],
    "moon": [_moon()],
    "arrow": [[(-1, -0.22), (0.2, -0.22), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.22), (-1, 0.22)]],
}


