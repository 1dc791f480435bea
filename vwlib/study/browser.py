"""The results browser: pick a dataset, concept, anchor, δ and the task a word was trained for, and see the word in
all three models — its generations, the detector's boxes, the classifier's votes, each model's score and nearest
words — in-domain and mapped into the two others. JupyterLab only (ipywidgets); `notebooks/10_browser.ipynb`.

Words brought in by `vw import-word` are listed in the "word" menu of their dataset.

Usage (in a notebook):
    browser = vw.WordBrowser(vw.StudyConfig(profile="mini", out="../runs/mini"))
    browser                                   # the widget; changing a menu redraws it
    browser.select(concept="star", delta="inf", trained_for="detection")   # the same, from code
"""

from __future__ import annotations

import io
import math
from html import escape

from ..data.datasets import concept_names
from ..roles import TASKS
from .config import StudyConfig
from .inspector import WordInspector

TRAINED_HERE = "trained here"
DELTA_CHOICES = (("0.1", 0.1), ("0.2", 0.2), ("0.5", 0.5), ("1.0", 1.0), ("∞", math.inf))


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def view_html(view: dict) -> str:
    """One model's view of a word as HTML: the model, where the word came from, its stored score, nearest words."""
    score = "not scored" if view["score"] is None else f"{view['score']:.3f}"
    nearest = ", ".join(f"{escape(w)} ({d:.2f})" for w, d in view["nearest"])
    return (f"<b>{escape(view['model'])}</b> · {escape(view['source'])}<br>"
            f"{escape(view['metric'])}: <b>{score}</b><br><small>nearest words: {nearest}</small>")


class WordBrowser:
    """The widget: five menus and one column per model. `card` holds what it shows (see `WordInspector.card`)."""

    def __init__(self, cfg: StudyConfig, n: int = 3, k: int = 5, inspector: WordInspector | None = None):
        import ipywidgets as w

        self.inspector = inspector or WordInspector(cfg)
        self.n, self.k, self.card = n, k, None
        menu = lambda label, options: w.Dropdown(description=label, options=options,  # noqa: E731
                                                 layout=w.Layout(width="260px"))
        self.dataset = menu("dataset", list(cfg.datasets))
        self.concept = menu("concept", [])
        self.anchor = menu("anchor", [])
        self.delta = menu("δ", list(DELTA_CHOICES))
        self.trained_for = menu("trained for", list(TASKS))
        # "trained here" (the menus above name the word), or one of the dataset's words from `vw import-word`
        self.word = menu("word", [TRAINED_HERE])
        self.status = w.HTML()
        self.columns = w.HBox()
        self.widget = w.VBox([w.HBox([self.dataset, self.concept, self.anchor]),
                              w.HBox([self.delta, self.trained_for, self.word]), self.status, self.columns])
        self._quiet = True
        self._fill_names()
        self.delta.value = 0.5
        self._quiet = False
        for menu_ in (self.dataset, self.concept, self.anchor, self.delta, self.trained_for, self.word):
            menu_.observe(self._changed, names="value")
        self.refresh()

    def _fill_names(self):
        concepts, anchors = concept_names(self.dataset.value)
        self.concept.options, self.anchor.options = concepts, anchors
        self.concept.value = concepts[0]
        self.anchor.value = anchors[1 % len(anchors)]  # an unrelated anchor: the paper's interesting case
        self._imported = {f"{name} ({t.task}, imported)": t
                          for name, t in self.inspector.store.imported(self.inspector.cfg.profile, self.dataset.value)}
        self.word.options = [TRAINED_HERE, *self._imported]
        self.word.value = TRAINED_HERE

    def _changed(self, change):
        if self._quiet:
            return
        if change["owner"] is self.dataset:
            self._quiet = True
            self._fill_names()
            self._quiet = False
        self.refresh()

    def select(self, **values) -> dict:
        """Set menus by name (dataset, concept, anchor, delta, trained_for, word) and redraw once. Returns the card."""
        self._quiet = True
        if "dataset" in values:
            self.dataset.value = values.pop("dataset")
            self._fill_names()
        for name, value in values.items():
            getattr(self, name).value = math.inf if name == "delta" and str(value) == "inf" else value
        self._quiet = False
        return self.refresh()

    def refresh(self) -> dict:
        """Train the selected word if the store lacks it, and draw its three views."""
        import ipywidgets as w

        from ..plots.figures import image_grid

        self.status.value = "<i>working: a word the store lacks is trained first…</i>"
        if self.word.value == TRAINED_HERE:
            card = self.inspector.card(self.dataset.value, self.concept.value, self.anchor.value, self.delta.value,
                                       self.trained_for.value, n=self.n, k=self.k)
        else:
            card = self.inspector.card_of(self._imported[self.word.value], n=self.n, k=self.k)
        columns = []
        for view in card["views"]:
            fig = image_grid([view["images"]], [""], [""] * len(view["images"]), boxes=[view["boxes"]] if view["boxes"]
                             else None, captions=[view["captions"]], cell=1.3)
            columns.append(w.VBox([w.HTML(view_html(view)), w.Image(value=_png(fig), format="png", width=380)],
                                  layout=w.Layout(width="400px")))
        self.columns.children = columns
        distance = card["distance"]
        self.status.value = (f"word <code>{escape(card['trial'].key())}</code> in {escape(self.inspector.cfg.out)}"
                             + ("" if distance is None else f" · ‖v − anchor‖ = {distance:.2f} d_nn"))
        self.card = card
        return card

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
