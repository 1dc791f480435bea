"""Words that load anywhere: each task's word, exported, put into a fresh *stock* model of its class, must make that
model read the anchor's prompt exactly as vwlib's own substitution did while training and scoring it."""

import math
import subprocess
import sys

import pytest
import torch

from vwlib import build_tiny, load_word
from vwlib.errors import VWError
from vwlib.models.text import TextSide
from vwlib.runner import run_trials
from vwlib.store import ResultStore
from vwlib.tasks import PROMPTS
from vwlib.trials import Trial

FAMILY = {"generation": "sd", "detection": "owl", "classification": "open_clip"}


@pytest.mark.parametrize("task", ["classification", "detection", "generation"])
def test_exported_word_loads_into_a_stock_model_and_means_what_it_meant(task, tmp_path, tiny_models):
    store = ResultStore(tmp_path / "runs")
    trial = Trial("tiny", task, "mini-objects", "star", "heart", 0.5, steps=3)
    run_trials([trial], store, progress=False, models={task: tiny_models[task]},
               task_kwargs={"generation": {"num_inference_steps": 1}})
    out = tmp_path / "star.safetensors"
    proc = subprocess.run([sys.executable, "-m", "vwlib", "export-word", str(store.path(trial)), str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    word = store.load_vector(store.path(trial))

    reference = TextSide(tiny_models[task])  # vwlib's hook, on the model the word was trained in
    ids = reference.ids([PROMPTS[task].format("heart")])
    anchor = torch.tensor([reference.loaded.tokenizer("heart", add_special_tokens=False)["input_ids"][0]])
    with torch.no_grad():
        expected = reference.encode(ids, anchor, word)

    stock = build_tiny(FAMILY[task], seed=0)  # a fresh copy of the same stock class and weights
    prompt = load_word(stock.model, out)
    assert prompt == PROMPTS[task].format("heart")
    with torch.no_grad():
        got = TextSide(stock).encode(ids)  # no hook: the stock model's own token table now holds the word
    assert torch.allclose(got, expected, atol=1e-6)


def test_load_word_refuses_the_wrong_model_and_other_files(tmp_path, tiny_models):
    store = ResultStore(tmp_path / "runs")
    trial = Trial("tiny", "classification", "mini-objects", "star", "heart", math.inf, steps=1)
    run_trials([trial], store, progress=False, models={"classification": tiny_models["classification"]})
    from vwlib import export_word

    path = export_word(store.path(trial), tmp_path / "w.safetensors")
    wide = build_tiny("owl", seed=0, width=48).model  # another width
    with pytest.raises(VWError, match="32-wide word .* this model's token table is 48 wide"):
        load_word(wide, path)
    with pytest.raises(VWError, match="not a vwlib word file"):
        from safetensors.torch import save_file

        save_file({"<s>": torch.zeros(1, 32)}, str(tmp_path / "ti.safetensors"), metadata={"format": "pt"})
        load_word(wide, tmp_path / "ti.safetensors")
