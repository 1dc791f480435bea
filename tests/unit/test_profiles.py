import subprocess
import sys

import pytest

import vwlib
from vwlib import MissingModelError, VWError, get_spec, load_model, model_table


def test_registry_has_four_profiles_of_four_roles():
    assert set(vwlib.PROFILES) == {"paper", "mini", "tiny", "paper-random"}
    for profile in vwlib.PROFILES.values():
        assert set(profile) == {"generation", "detection", "classification", "scorer"}
    assert get_spec("paper", "generation").source == "stabilityai/stable-diffusion-2-1"
    assert get_spec("paper", "detection").source == "google/owlv2-base-patch16-ensemble"
    assert get_spec("paper", "classification").source == "apple/DFN2B-CLIP-ViT-L-14"
    assert get_spec("paper", "scorer").source == "openai/clip-vit-large-patch14"
    assert [get_spec("mini", r).family for r in vwlib.ROLES] == ["sd", "owl", "open_clip", "open_clip"]
    # paper-random: the paper's families (built from their published configurations, random weights)
    assert [get_spec("paper-random", r).family for r in vwlib.ROLES] == [get_spec("paper", r).family
                                                                         for r in vwlib.ROLES]


def test_missing_paper_model_is_one_line_with_the_fix(empty_hub):
    with pytest.raises(MissingModelError) as err:
        load_model("paper", "detection")
    message = str(err.value)
    assert "\n" not in message
    assert "'google/owlv2-base-patch16-ensemble'" in message
    assert "hf download google/owlv2-base-patch16-ensemble" in message


def test_unknown_profile_or_role():
    with pytest.raises(VWError, match="unknown profile 'papr'; choose one of paper, mini, tiny, paper-random"):
        load_model("papr", "generation")
    with pytest.raises(VWError, match="unknown model role 'segmentation'"):
        get_spec("tiny", "segmentation")


def test_model_table_reports_availability(empty_hub):
    rows = {(r["profile"], r["role"]): r for r in model_table()}
    assert len(rows) == 16
    assert rows[("tiny", "generation")]["available"] is True
    assert rows[("paper", "scorer")]["available"] is False


def test_cli_missing_model_exits_2_with_one_line(empty_hub):
    proc = subprocess.run([sys.executable, "-m", "vwlib", "models", "--profile", "paper", "--load"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("vw: error: model 'stabilityai/stable-diffusion-2-1'")
    assert "Traceback" not in proc.stderr
    assert "MISSING" in proc.stdout


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "vwlib", "--help"], capture_output=True, text=True).stdout
    for command in ("models", "tokens", "notebooks"):
        assert command in out
