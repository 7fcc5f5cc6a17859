"""Shared fixtures: a tiny random model with a real tokenizer, and the real datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    root = os.environ.get("EVALSUITE_DATA")
    return Path(root) if root and Path(root).is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("EVALSUITE_DATA does not point at the datasets folder")
    return root.resolve()  # tests pass absolute paths made from it


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's real tokenizer, saved as safetensors."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from evalsuite.models.default import packaged_gguf

    gguf = packaged_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def bos_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a tokenizer that adds BOS to every text itself, as Llama-2's does."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-bos")
    for f in tiny_model_dir.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    bos = (tokenizer.bos_token, tokenizer.bos_token_id)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos[0]} $A", pair=f"{bos[0]} $A $B", special_tokens=[bos]
    )
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from evalsuite.models.hf import HFModel

    return HFModel(str(tiny_model_dir), device="cpu", dtype="float32", batch_size=4)


@pytest.fixture(scope="session")
def judge_home(tmp_path_factory) -> Path:
    """An evalsuite home shared by the judge tests (weight digests and samples go here)."""
    return tmp_path_factory.mktemp("judge-home")


@pytest.fixture
def in_judge_home(judge_home, monkeypatch):
    monkeypatch.setenv("EVALSUITE_HOME", str(judge_home))


@pytest.fixture(scope="session")
def minilm(judge_home):
    from evalsuite.scorers.judges import load_judge

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALSUITE_HOME", str(judge_home))
        return load_judge("minilm", device="cpu")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No data folder and no Hub: tasks fall back to their built-in samples, under a fresh home."""
    from evalsuite.data import hub_reachable

    monkeypatch.setenv("EVALSUITE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EVALSUITE_DATA", raising=False)
    hub_reachable.cache_clear()  # its answer is cached per process
    yield tmp_path
    hub_reachable.cache_clear()


def read_results(output: Path) -> dict:
    return json.loads((output / "results.json").read_text())


@pytest.fixture(scope="session")
def tiny_rm_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A reward model in the trainer's format (one-label sequence classification), random weights."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    config = LlamaConfig.from_pretrained(str(tiny_model_dir))
    config.num_labels, config.pad_token_id = 1, tokenizer.eos_token_id
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


HH_PAIRS = 20  # HH-RLHF comparisons that demo/hh_pairs.py writes for the tests


@pytest.fixture(scope="session")
def hh_pairs(data_dir, tmp_path_factory) -> Path:
    """demo/hh_pairs.py's chosen.jsonl, rejected.jsonl and labels.json for the first HH_PAIRS dialogues."""
    out = tmp_path_factory.mktemp("hh")
    done = subprocess.run([sys.executable, "demo/hh_pairs.py", "--limit", str(HH_PAIRS), "--output", str(out),
                           "--data-dir", str(data_dir)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out
