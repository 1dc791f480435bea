"""Every mini model in a folder its stock class loads: `vw models` prints it (building it on first use), and the
stock class, knowing nothing of vwlib, loads it and computes what vwlib's loader computes."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from vwlib.models.profiles import load_model
from vwlib.models.text import TextSide


def test_vw_models_prints_a_stock_folder_for_each_mini_model_and_the_stock_classes_load_them(tmp_path):
    env = {**__import__("os").environ, "VWLIB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "vwlib", "models", "--profile", "mini", "--json"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    folders = {r["role"]: Path(r["stock_folder"]) for r in json.loads(proc.stdout)}
    assert set(folders) == {"generation", "detection", "classification", "scorer"}
    assert all(f.is_dir() and f.is_relative_to(tmp_path / "cache") for f in folders.values())  # built, in the cache
    text = subprocess.run([sys.executable, "-m", "vwlib", "models", "--profile", "mini"], capture_output=True,
                          text=True, env=env).stdout
    assert str(folders["generation"]) in text and "stock folder" in text

    from diffusers import StableDiffusionPipeline
    from transformers import Owlv2ForObjectDetection

    pipe = StableDiffusionPipeline.from_pretrained(folders["generation"], safety_checker=None)
    owl = Owlv2ForObjectDetection.from_pretrained(folders["detection"])
    ids = pipe.tokenizer(["a photo of star"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    ours = TextSide(load_model("mini", "generation"))
    with torch.no_grad():
        assert torch.allclose(pipe.text_encoder(ids)[0], ours.encode(ours.ids(["a photo of star"])), atol=1e-5)
        assert torch.equal(owl.owlv2.text_model.embeddings.token_embedding.weight,
                           load_model("mini", "detection").model.owlv2.text_model.embeddings.token_embedding.weight)


def test_a_word_exported_for_diffusers_draws_in_the_stock_mini_pipeline(tmp_path, monkeypatch):
    """The guide's recipe (docs/guide.md, "Your own images"): the mini generator from its stock folder, a word from
    vw export-diffusers."""
    from diffusers import StableDiffusionPipeline

    from vwlib.models.profiles import get_spec
    from vwlib.runner import run_trials
    from vwlib.store import ResultStore
    from vwlib.trials import Trial

    monkeypatch.setenv("VWLIB_CACHE", str(tmp_path / "cache"))
    store = ResultStore(tmp_path / "runs")
    trial = Trial("mini", "generation", "mini-objects", "star", "heart", 0.5, steps=2)
    run_trials([trial], store, progress=False, task_kwargs={"generation": {"num_inference_steps": 1}})
    proc = subprocess.run([sys.executable, "-m", "vwlib", "export-diffusers", str(store.path(trial)),
                           str(tmp_path / "ti"), "--token", "<star>"], capture_output=True, text=True,
                          env={**__import__("os").environ, "VWLIB_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    folder = get_spec("mini", "generation").stock_folder()
    assert f"StableDiffusionPipeline.from_pretrained('{folder}')" in proc.stdout  # the closing line names it
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    pipe.load_textual_inversion(str(tmp_path / "ti" / "learned_embeds.safetensors"), token="<star>")
    image = pipe("a photo of <star>", height=32, width=32, num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)
