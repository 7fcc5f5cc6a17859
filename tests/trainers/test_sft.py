"""``evalsuite train sft`` end to end on a tiny random model: loss goes down, the checkpoint carries
its manifest and lineage, ``evalsuite run`` records it, bad input stops with one line."""

from __future__ import annotations

import json

import pytest
import torch

from evalsuite.cli import main as evalsuite_main
from evalsuite.errors import EvalsuiteError
from evalsuite.models.loading import fingerprint, lineage
from evalsuite.trainers import sft
from tests.trainers.helpers import DEMOS, read_log, read_manifest, write_jsonl


def run_sft(tiny_model_dir, tmp_path, *extra, name="sft"):
    data = write_jsonl(tmp_path / "demos.jsonl", DEMOS)
    argv = ["--model", str(tiny_model_dir), "--data", data, "--output", str(tmp_path / name), "--batch-size", "8",
            "--lr", "3e-3", "--device", "cpu", *extra]
    assert sft.main(argv) == 0
    return tmp_path / name


def test_a_few_steps_reduce_the_loss_and_write_a_checkpoint(tiny_model_dir, tmp_path):
    valid = write_jsonl(tmp_path / "v.jsonl", DEMOS)
    out = run_sft(tiny_model_dir, tmp_path, "--max-steps", "8", "--valid-data", valid)
    log = read_log(out)
    assert [r["step"] for r in log] == list(range(1, 9))
    assert log[-1]["loss"] < log[0]["loss"] - 0.5  # the same 8 demonstrations every step: it learns them
    manifest = read_manifest(out)
    assert manifest["metrics"]["valid_loss"] < manifest["metrics"]["valid_loss_first"] - 0.5
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (tmp_path / "sft.training").exists()  # the work folder goes once the checkpoint is in place
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # a plain Hugging Face folder


def test_manifest_and_lineage(tiny_model_dir, tmp_path, data_dir, capsys):
    out = run_sft(tiny_model_dir, tmp_path, "--max-steps", "2", "--valid-fraction", "0.3", "--no-eval-before")
    manifest = read_manifest(out)
    assert manifest["evalsuite_manifest"] == 1 and manifest["stage"] == "sft"
    base = {"stage": "base", "path": str(tiny_model_dir), "fingerprint": fingerprint(str(tiny_model_dir))}
    assert manifest["parents"] == [{"role": "init", "spec": str(tiny_model_dir), **base}]
    assert manifest["lineage"] == [base]
    (entry,) = manifest["data"]
    assert entry["format"] == "alpaca" and entry["rows"] == 8 and len(entry["sha256"]) == 64
    assert manifest["config"]["lr"] == 3e-3 and manifest["config"]["max_steps"] == 2
    assert manifest["steps"] == 2 and manifest["tokens"] > 0 and manifest["seed"] == 1234
    assert manifest["device"]["type"] == "cpu" and manifest["versions"]["torch"] == torch.__version__
    assert manifest["format"]["chat_template"] is True and manifest["wall_seconds"] > 0
    assert (out / "train_config.toml").read_text().startswith('model = "')
    me = lineage(str(out), fingerprint(str(out)))
    assert [x["stage"] for x in me] == ["base", "sft"]
    record = tmp_path / "run"
    assert evalsuite_main(["run", "--model", str(out), "--tasks", "crows_pairs", "--limit", "4", "--data-dir",
                           str(data_dir), "--output", str(record), "--cache", str(tmp_path / "c.sqlite")]) == 0
    written = json.loads((record / "results.json").read_text())["model"]["lineage"]
    assert written == me


def test_output_that_holds_something_else_is_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    data = write_jsonl(tmp_path / "demos.jsonl", DEMOS)
    argv = ["--model", str(tiny_model_dir), "--data", data, "--output", str(out), "--max-steps", "1"]
    with pytest.raises(EvalsuiteError, match="already holds other files.*--overwrite"):
        sft.main(argv)
    assert sft.main(argv + ["--overwrite", "--no-eval-before"]) == 0
    assert not (out / "notes.txt").exists() and (out / "evalsuite_manifest.json").is_file()
    with pytest.raises(EvalsuiteError, match="already holds a trained sft checkpoint"):
        sft.main(argv)


def test_an_unfinished_run_with_other_settings_is_refused(tiny_model_dir, tmp_path):
    from evalsuite.fileio import sha256_file
    from evalsuite.trainers.config import SFTConfig, resolve

    data = write_jsonl(tmp_path / "demos.jsonl", DEMOS)
    argv = ["--model", str(tiny_model_dir), "--data", data, "--output", str(tmp_path / "sft"), "--batch-size", "8",
            "--lr", "3e-3", "--device", "cpu", "--max-steps", "1"]
    earlier = resolve(SFTConfig, argv, "p").to_dict() | {"batch_size": 4}
    work = tmp_path / "sft.training"
    work.mkdir()
    (work / "training.json").write_text(json.dumps({"stage": "sft", "config": earlier,
                                                    "data": [sha256_file(tmp_path / "demos.jsonl")]}))
    with pytest.raises(EvalsuiteError) as err:
        sft.main(argv)
    assert "holds an unfinished sft run with other settings (batch_size: 4 -> 8)" in str(err.value)
    assert sft.main(argv + ["--overwrite"]) == 0  # --overwrite discards it and starts again


def test_nan_loss_stops_and_keeps_the_last_good_state(tiny_model_dir, tmp_path):
    with pytest.raises(EvalsuiteError) as err:
        run_sft(tiny_model_dir, tmp_path, "--max-steps", "4", "--lr", "1e25", "--save-every", "1",
                "--max-grad-norm", "0", "--no-eval-before")
    message = str(err.value)
    assert "became NaN or infinite at step 2" in message and "last good state (step 1)" in message
    assert "lower --lr (now 1e+25)" in message
    assert (tmp_path / "sft.training" / "state" / "step-00000001" / "model.safetensors").is_file()
    assert not (tmp_path / "sft").exists()


def test_reward_model_and_tokenizerless_bases_are_refused(tiny_model_dir, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bare / name).unlink()
    with pytest.raises(EvalsuiteError, match="has no tokenizer files"):
        run_sft(bare, tmp_path, "--max-steps", "1")
    config = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps(config | {"architectures": ["LlamaForSequenceClassification"]}))
    with pytest.raises(EvalsuiteError, match="is a reward model"):
        run_sft(bare, tmp_path, "--max-steps", "1")
