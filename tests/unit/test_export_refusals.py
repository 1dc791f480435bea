"""`vw export-diffusers` writes only what a stock textual-inversion loader can use: generation token words."""

import json

import pytest

from vwlib import cli


@pytest.mark.parametrize("config,message", [
    ({"task": "generation", "space": "output"}, "output-space embedding (ConES)"),
    ({"task": "detection", "space": "input"}, "trained for detection, not generation"),
])
def test_export_refuses_output_space_and_other_tasks_in_one_line(config, message, tmp_path, capsys):
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / "config.json").write_text(json.dumps(config))
    code = cli.main(["export-diffusers", str(trial), str(tmp_path / "export"), "--token", "<w>"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "export").exists()


def test_a_token_added_to_one_models_tokenizer_is_not_in_anothers():
    """load_textual_inversion adds tokens to the pipeline's tokenizer: each model must own its copy."""
    from vwlib.models.tokenizer import clip_tokenizer

    first, second = clip_tokenizer(pad_token="!"), clip_tokenizer(pad_token="!")
    first.add_tokens(["<w>"])
    assert len(first) == 49409 and len(second) == 49408 and len(clip_tokenizer(pad_token="!")) == 49408
