"""Stage configs: defaults, then a TOML file, then command-line flags; one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.trainers.config import RMConfig, SFTConfig, build_parser, dump_toml, resolve, tomllib

TOML = """
lr = 3e-4
batch_size = 2
data = "demos.jsonl"
valid-fraction = 0.25

[sft]
epochs = 5

[rm]
epochs = 9
data = ["a.jsonl", "b.jsonl"]
"""


def test_toml_then_flags_override(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text(TOML)
    sft = resolve(SFTConfig, ["--config", str(path), "--lr", "1e-3", "--output", "out"], "p")
    assert (sft.lr, sft.batch_size, sft.epochs, sft.data, sft.valid_fraction) == (1e-3, 2, 5, ["demos.jsonl"], 0.25)
    rm = resolve(RMConfig, ["--config", str(path), "--output", "out", "--no-shuffle"], "p")
    assert (rm.lr, rm.epochs, rm.data, rm.shuffle) == (3e-4, 9, ["a.jsonl", "b.jsonl"], False)
    assert SFTConfig().epochs == 2 and RMConfig().epochs == 1  # each stage's own defaults


def test_repeated_data_flags_and_saved_config_leave_out_how_to_run(tmp_path):
    c = resolve(SFTConfig, ["--data", "a", "--data", "b", "--output", "o", "--overwrite"], "p")
    assert c.data == ["a", "b"]
    saved = c.to_dict()
    assert "overwrite" not in saved and "config" not in saved and saved["data"] == ["a", "b"]


def test_resolved_config_round_trips_through_toml(tmp_path):
    c = resolve(SFTConfig, ["--data", "a \"quoted\" path", "--output", "o", "--lr", "2.5e-06"], "p")
    path = tmp_path / "again.toml"
    path.write_text(dump_toml(c.to_dict()))
    assert tomllib.loads(path.read_text()) == c.to_dict()
    assert resolve(SFTConfig, ["--config", str(path)], "p").to_dict() == c.to_dict()


def test_every_field_has_its_help_text_once():
    for cls in (SFTConfig, RMConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f.name
    text = build_parser(SFTConfig, "evalsuite train sft").format_help()
    assert "--residual-dropout" in text and "InstructGPT" in text and "--valid-fraction" in text


@pytest.mark.parametrize(("content", "expected"), [
    ("batchsize = 4", "unknown setting 'batchsize' for sft. Fix: did you mean 'batch_size'?"),
    ('lr = "fast"', "'lr' must be a number, got 'fast'"),
    ("epochs = 1.5", "'epochs' must be a whole number"),
    ("data = [1, 2]", "'data' must be a list of strings"),
    ("lr = ", "is not valid TOML"),
])
def test_bad_toml_is_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_text(content + "\n")
    with pytest.raises(EvalsuiteError) as err:
        resolve(SFTConfig, ["--config", str(path), "--data", "a", "--output", "o"], "p")
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("argv", "expected"), [
    (["--batch-size", "x"], "invalid int value"),
    (["--valid-fraction", "1.5"], "--valid-fraction must be in [0, 1)"),
    (["--packing", "maybe"], "invalid choice"),
    (["--lr", "0"], "--lr must be positive"),
    (["--valid-fraction", "0.1", "--valid-data", "v.jsonl"], "Both --valid-fraction and --valid-data"),
])
def test_bad_flags_are_one_line(argv, expected):
    with pytest.raises(EvalsuiteError) as err:
        resolve(SFTConfig, ["--data", "a", "--output", "o", *argv], "evalsuite train sft")
    assert expected in str(err.value)


def test_missing_data_and_output():
    with pytest.raises(EvalsuiteError, match="No training data"):
        resolve(SFTConfig, ["--output", "o"], "p")
    with pytest.raises(EvalsuiteError, match="No --output"):
        resolve(SFTConfig, ["--data", "a"], "p")
    with pytest.raises(EvalsuiteError, match="--eval-only needs the reward checkpoint"):
        resolve(RMConfig, ["--eval-only", "--data", "a"], "p")
    assert resolve(RMConfig, ["--eval-only", "--reward", "r", "--data", "a"], "p").eval_only
