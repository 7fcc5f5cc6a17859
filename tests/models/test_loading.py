"""Loading checkpoints: tokenizers that cannot be trusted are refused, the identity covers every file that
changes an answer, reward models and causal LMs are not confused, device and dtype rules."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.models.hf import HFModel
from evalsuite.models.loading import (
    TOKENIZER_FILES,
    check_kind,
    fingerprint,
    lineage,
    load_tokenizer,
    resolve_dtype,
)


def copy_without_tokenizer(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        if f.name.startswith(("config", "generation_config")) or f.suffix == ".safetensors":
            shutil.copy(f, dst / f.name)
    return dst


def test_folder_without_tokenizer_files_is_refused_naming_them(tiny_model_dir, tmp_path):
    bare = copy_without_tokenizer(tiny_model_dir, tmp_path / "bare")
    with pytest.raises(EvalsuiteError, match="has no tokenizer files") as err:
        load_tokenizer(str(bare))
    assert all(name in str(err.value) for name in TOKENIZER_FILES[:2])


def test_degenerate_tokenizer_is_refused(tiny_model_dir, tmp_path):
    from tokenizers import Tokenizer, models

    bare = copy_without_tokenizer(tiny_model_dir, tmp_path / "bare")
    # A tokenizer that transformers loads without complaint, with a three-word vocabulary.
    Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]")).save(str(bare / "tokenizer.json"))
    (bare / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    with pytest.raises(EvalsuiteError, match="has only 3 tokens: its files are incomplete"):
        load_tokenizer(str(bare))


def test_fingerprint_covers_tokenizer_and_chat_template(tiny_model_dir, tmp_path):
    bare = copy_without_tokenizer(tiny_model_dir, tmp_path / "m")
    weights_only = fingerprint(str(bare))
    for f in tiny_model_dir.iterdir():
        if not (bare / f.name).exists():
            shutil.copy(f, bare / f.name)
    with_tokenizer = fingerprint(str(bare))
    (bare / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    with_template = fingerprint(str(bare))
    assert len({weights_only, with_tokenizer, with_template}) == 3
    assert fingerprint(str(bare)) == with_template  # stable


def test_adding_tokenizer_files_changes_the_cache_namespace(tiny_model_dir, tmp_path):
    """The same folder with another tokenizer must never read the first one's cached answers."""
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    before = HFModel(str(model_dir), device="cpu").cache_namespace
    config = (model_dir / "tokenizer_config.json").read_text()
    (model_dir / "tokenizer_config.json").write_text(config.replace("}", ', "model_max_length": 77}', 1))
    assert HFModel(str(model_dir), device="cpu").cache_namespace != before


def test_reward_model_and_causal_lm_are_not_confused(tiny_model_dir, tmp_path):
    check_kind(str(tiny_model_dir), "causal", "--model")  # fine
    with pytest.raises(EvalsuiteError, match="is a causal language model, not a reward model"):
        check_kind(str(tiny_model_dir), "reward", "--reward")
    rm = tmp_path / "rm"
    shutil.copytree(tiny_model_dir, rm)
    config = (rm / "config.json").read_text().replace("LlamaForCausalLM", "LlamaForSequenceClassification")
    (rm / "config.json").write_text(config)
    with pytest.raises(EvalsuiteError, match="is a reward model"):
        check_kind(str(rm), "causal", "--model")


def test_max_length_beyond_the_models_positions_is_refused(tiny_model_dir):
    with pytest.raises(EvalsuiteError, match="longer than model .* can read \\(512 positions\\)"):
        HFModel(str(tiny_model_dir), device="cpu", max_length=1024)
    assert HFModel(str(tiny_model_dir), device="cpu", max_length=256).max_length == 256


def test_dtype_rules():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(EvalsuiteError, match="Unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))


def test_lineage_of_a_checkpoint_without_manifest_is_a_base(tiny_model_dir, tmp_path):
    fp = fingerprint(str(tiny_model_dir))
    assert lineage(str(tiny_model_dir), fp) == [{"stage": "base", "path": str(tiny_model_dir), "fingerprint": fp}]
    child = tmp_path / "sft"
    shutil.copytree(tiny_model_dir, child)
    parent = {"stage": "base", "path": "base-model", "fingerprint": "f" * 64}
    (child / "evalsuite_manifest.json").write_text(json.dumps({"stage": "sft", "lineage": [parent]}))
    assert [step["stage"] for step in lineage(str(child), "c" * 64)] == ["base", "sft"]
