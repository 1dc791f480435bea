"""Inputs checked at the edge: every bad argument or sweep field is refused before any model loads or any file is
written, as one line on stderr that names the problem and the fix, exit code 2, no traceback."""

import pytest
import torch

from vwlib import cli
from vwlib.models import loaders

SWEEP = "profile: tiny\nout: {out}\ndatasets: [mini-objects]\ntasks: [classification]\nconcepts: 2\n"

# (name, argv, sweep file text or None, what stderr must say)
CASES = [
    ("lr negative", ["train", "--lr", "-0.1"], None, "argument --lr: must be a positive, finite number"),
    ("lr nan", ["train", "--lr", "nan"], None, "argument --lr: must be a positive, finite number"),
    ("lr not a number", ["train", "--lr", "fast"], None, "argument --lr: must be a positive number, got 'fast'"),
    ("steps zero", ["train", "--steps", "0"], None, "argument --steps: must be >= 1"),
    ("steps fraction", ["train", "--steps", "1.5"], None, "argument --steps: must be a whole number"),
    ("out is a file", ["train", "--out", "{file}"], None, "is a file; give a folder"),
    ("delta zero", ["train", "--deltas", "0"], None, "δ must be > 0"),
    ("delta negative", ["train", "--deltas", "0.5", "-1"], None, "δ must be > 0"),
    ("delta word", ["train", "--deltas", "wide"], None, "δ must be a positive number or 'inf'"),
    ("unknown dataset", ["train", "--dataset", "imagenet-mini"], None, "unknown dataset 'imagenet-mini'"),
    ("unknown concept", ["train", "--concepts", "sombrero"], None, "unknown concept 'sombrero'"),
    ("two-token anchor", ["train", "--anchors", "cyan"], None, "'cyan' is 2 CLIP tokens"),
    ("ambiguous anchors", ["train", "--anchors", "all"], None, "use 'dataset'"),
    ("negative seed", ["train", "--seeds", "-1"], None, "argument --seeds: must be >= 0"),
    ("unknown task", ["train", "--task", "segmentation"], None, "invalid choice: 'segmentation'"),
    ("unknown device", ["train", "--device", "tpu"], None, "must be auto, cpu, cuda or cuda:N"),
    ("unknown profile", ["train", "--profile", "huge"], None, "invalid choice: 'huge'"),
    ("paper dataset missing", ["train", "--profile", "tiny", "--dataset", "imagenet"], None,
     "dataset imagenet not found"),
    ("sweep file missing", ["sweep", "{tmp}/nowhere.yaml"], None, "no sweep file at"),
    ("sweep not yaml", ["sweep", "{sweep}"], "profile: tiny\ndeltas: [0.1, inf\n", "is not valid YAML"),
    ("sweep not a mapping", ["sweep", "{sweep}"], "- tiny\n- mini\n", "a sweep file is a mapping"),
    ("sweep unknown key", ["sweep", "{sweep}"], SWEEP + "learning_rate: 0.1\n", "unknown setting(s) learning_rate"),
    ("sweep group size", ["sweep", "{sweep}"], SWEEP + "group_size: 0\n", "group_size must be a whole number >= 1"),
    ("sweep delta", ["sweep", "{sweep}"], SWEEP + "deltas: [0]\n", "δ must be > 0"),
    ("sweep anchors all", ["sweep", "{sweep}"], SWEEP + "anchors: all\n", "anchors must be one of grid, dataset, own"),
    ("sweep concepts", ["sweep", "{sweep}"], SWEEP.replace("concepts: 2", "concepts: -3"), "concepts must be >= 1"),
    ("sweep device", ["sweep", "{sweep}"], SWEEP + "device: tpu\n", "device must be auto, cpu, cuda or cuda:N"),
    ("sweep task", ["sweep", "{sweep}"], SWEEP.replace("[classification]", "[segmentation]"),
     "unknown task 'segmentation'"),
    ("sweep steps type", ["sweep", "{sweep}"], SWEEP + "steps: many\n", "steps must be a whole number, got 'many'"),
    ("sweep profile", ["sweep", "{sweep}"], SWEEP.replace("profile: tiny", "profile: huge"), "unknown profile 'huge'"),
    ("sweep anchor token", ["sweep", "{sweep}"], SWEEP + "anchors: [cyan]\n", "'cyan' is 2 CLIP tokens"),
    ("sweep out is a file", ["sweep", "{sweep}"], SWEEP.replace("out: {out}", "out: {file}"), "is a file"),
    ("sweep group size flag", ["sweep", "{sweep}", "--group-size", "0"], SWEEP, "argument --group-size: must be >= 1"),
    ("results without store", ["results", "--out", "{tmp}/runs"], None, "no result store at"),
    ("results csv folder missing", ["results", "--csv", "{tmp}/no/such/t.csv"], None, "does not exist; create it"),
    ("export not a trial", ["export-diffusers", "{tmp}", "{tmp}/export", "--token", "<s>"], None,
     "is not a trial directory"),
    ("export token spaces", ["export-diffusers", "{tmp}", "{tmp}/export", "--token", "my star"], None,
     "--token must be one placeholder without spaces"),
    ("transfer eval no maps", ["transfer", "eval", "--profile", "tiny", "--out", "{tmp}/runs"], None,
     "fit them first: vw transfer fit"),
    ("probe same task", ["probe", "--task", "generation", "--transfer-from", "generation"], None,
     "--transfer-from must name another task"),
    ("probe one concept", ["probe", "--concepts", "1"], None, "--concepts must be >= 2"),
    ("probe delta", ["probe", "--delta", "0"], None, "δ must be > 0"),
    ("probe working detection", ["probe", "--working", "--task", "detection"], None,
     "working-word purity needs a 0/1 score per word"),
    ("probe working and text-only", ["probe", "--working", "--text-only"], None,
     "--working and --text-only are two different probes: choose one"),
    ("probe score without text-only", ["probe", "--score"], None, "--score scores the words --text-only trains"),
    ("mini steps", ["mini", "train", "--model", "clip", "--steps", "0"], None, "argument --steps: must be >= 1"),
    ("mini variant without model", ["mini", "train", "--variant", "lexicon"], None, "give --model too"),
    ("mini unknown variant", ["mini", "train", "--model", "sd", "--variant", "lexicon"], None,
     "mini-sd has no training variant 'lexicon'"),
    ("mini per concept", ["mini", "eval", "--per-concept", "0"], None, "argument --per-concept: must be >= 1"),
    ("notebook prefix", ["notebooks", "--only", "04", "99"], None, "no notebook starts with '99'; choose from 00_"),
    ("models profile", ["models", "--profile", "huge"], None, "invalid choice: 'huge'"),
    ("tokens none", ["tokens"], None, "the following arguments are required: words"),
    ("data action", ["data", "fetch"], None, "invalid choice: 'fetch'"),
    ("export-word not a trial", ["export-word", "{tmp}", "{tmp}/w.safetensors"], None, "is not a trial directory"),
    ("fidelity concepts", ["fidelity", "--concepts", "0"], None, "argument --concepts: must be >= 1"),
    ("fidelity task", ["fidelity", "--task", "segmentation"], None, "argument --task: invalid choice: 'segmentation'"),
    ("fidelity steps", ["fidelity", "--steps", "0"], None, "argument --steps: must be >= 1"),
    ("import-word pickle", ["import-word", "{tmp}/w.bin", "--model", "generation", "--dataset", "mini-objects",
                            "--concept", "star"], None, "is a pickle file, which can run code when loaded"),
]


def test_every_subcommand_of_the_parser_has_a_refused_input():
    """The cases cover the real command line: a new subcommand without a bad-input case fails here."""
    import argparse

    (subcommands,) = [a.choices for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(subcommands) == {argv[0] for _, argv, _, _ in CASES}


@pytest.mark.parametrize("name,argv,sweep,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_loaded_nothing_written(name, argv, sweep, message, tmp_path,
                                                                      monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_text("not a folder")
    monkeypatch.chdir(work)
    monkeypatch.setenv("VWLIB_DATA_DIR", str(tmp_path / "data"))

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(loaders, "family", no_model)
    subs = {"{tmp}": str(work), "{file}": str(work / "a-file"), "{sweep}": str(work / "sweep.yaml"),
            "{out}": str(work / "runs")}

    def fill(text):
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    if sweep is not None:
        (work / "sweep.yaml").write_text(fill(sweep))
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    try:
        code = cli.main([fill(a) for a in argv])
    except SystemExit as e:  # argparse refuses before our code runs
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before  # nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_a_gpu_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--device", "cuda"])
    assert e.value.code == 2 and "no CUDA device on this machine; use --device cpu" in capsys.readouterr().err


def test_the_cli_exit_code_and_stderr_from_a_real_process(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "vwlib", "train", "--lr", "-0.1", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--lr" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_auto_is_every_commands_default_device_and_means_cuda_only_when_present():
    from vwlib.models.accel import resolve_device
    from vwlib.study.config import StudyConfig

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == cli.device("auto") == expected
    assert resolve_device("cpu") == "cpu"
    parser = cli.build_parser()
    for argv in (["train"], ["transfer", "fit"], ["probe"], ["fidelity"], ["notebooks"], ["mini", "train"]):
        assert parser.parse_args(argv).device == expected, argv
    assert StudyConfig(device="cpu") == StudyConfig(device="cuda")  # where it runs is not what it is
