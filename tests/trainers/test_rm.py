"""``evalsuite train rm`` end to end on a tiny model: it learns a preference, saves a reward model
plain transformers reads the same way, centres on demonstrations, and ``--eval-only`` agrees."""

from __future__ import annotations

import pytest
import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.models.reward import RewardModel
from evalsuite.trainers import rm
from evalsuite.trainers.formats import load
from evalsuite.trainers.losses import fit_length_expert
from tests.trainers.helpers import DEMOS, PAIRS, read_log, read_manifest, write_jsonl


@pytest.fixture(scope="module")
def trained_rm(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rm")
    ranked = [{"prompt": "Pick one", "responses": ["great answer", "fine answer", "bad"]}] * 4
    data = [write_jsonl(tmp / "pairs.jsonl", PAIRS), write_jsonl(tmp / "ranked.jsonl", ranked)]
    demos = write_jsonl(tmp / "demos.jsonl", DEMOS)
    argv = ["--model", str(tiny_model_dir), "--data", data[0], "--data", data[1], "--output", str(tmp / "rm"),
            "--batch-size", "4", "--lr", "1e-2", "--max-steps", "12", "--valid-data", data[0], "--demos", demos,
            "--device", "cpu", "--eval-before"]
    assert rm.main(argv) == 0
    return tmp


def test_it_learns_the_preference(trained_rm):
    manifest = read_manifest(trained_rm / "rm")
    log = read_log(trained_rm / "rm")
    assert log[-1]["loss"] < log[0]["loss"] and log[0]["loss"] == pytest.approx(0.69, abs=0.05)
    first, last = manifest["evaluations"][0], manifest["evaluations"][-1]
    assert last["valid_accuracy"] > first["valid_accuracy"] and last["valid_accuracy"] == 1.0
    assert manifest["stage"] == "rm" and [p["stage"] for p in manifest["lineage"]] == ["base"]
    assert {d["format"] for d in manifest["data"]} == {"pairs", "ranked", "alpaca"}


def test_saved_reward_model_reads_the_same_in_plain_transformers(trained_rm):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = str(trained_rm / "rm")
    reward = RewardModel(folder, device="cpu", batch_size=8)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert plain.config.pad_token_id == tokenizer.pad_token_id and plain.config.num_labels == 1
    texts = [reward.text([{"role": "user", "content": p["prompt"]}], p[k])
             for p in PAIRS[:4] for k in ("chosen", "rejected")]
    batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    assert (batch.attention_mask == 0).any()  # the batch holds padding
    with torch.no_grad():
        rewards = plain(**batch).logits.squeeze(-1)
    offset = plain.config.reward_offset
    assert offset != 0.0
    assert torch.allclose(rewards + offset, torch.tensor(reward.score_texts(texts)), atol=1e-5)


def test_demonstrations_score_zero_on_average(trained_rm):
    reward = RewardModel(str(trained_rm / "rm"), device="cpu")
    demos = load(str(trained_rm / "demos.jsonl"), "demonstrations").examples
    scores = reward.score([(d.prompt, d.response) for d in demos])
    assert abs(sum(scores) / len(scores)) < 1e-4
    assert read_manifest(trained_rm / "rm")["metrics"]["demos"] == len(DEMOS)


def test_eval_only_agrees_with_training_validation(trained_rm, capsys):
    capsys.readouterr()
    assert rm.main(["--eval-only", "--reward", str(trained_rm / "rm"), "--data", str(trained_rm / "pairs.jsonl"),
                    "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    manifest = read_manifest(trained_rm / "rm")
    assert f"accuracy                     {manifest['metrics']['valid_accuracy']:.4f}" in out
    assert "on 12 comparisons (12 pairs)" in out and "accuracy_shorter_preferred" in out and "longer_wins" in out


def test_kinds_are_checked_both_ways(trained_rm, tiny_model_dir):
    with pytest.raises(EvalsuiteError, match="is a causal language model, not a reward model"):
        rm.main(["--eval-only", "--reward", str(tiny_model_dir), "--data", str(trained_rm / "pairs.jsonl")])
    with pytest.raises(EvalsuiteError, match="is a reward model"):
        rm.main(["--model", str(trained_rm / "rm"), "--data", str(trained_rm / "pairs.jsonl"), "--output",
                 str(trained_rm / "again")])


def test_comparisons_with_one_response_or_equal_ranks_are_refused(tiny_model_dir, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Q", "responses": ["a", "b"], "ranks": [2, 2]}])
    with pytest.raises(EvalsuiteError, match=r"bad.jsonl at line 1: equal ranks \[2, 2\]"):
        rm.main(["--model", str(tiny_model_dir), "--data", bad, "--output", str(tmp_path / "o")])
    assert not (tmp_path / "o.training").exists()  # refused before anything was written


def test_the_length_expert_is_fitted_on_the_training_pairs_and_recorded(tiny_model_dir, tmp_path):
    # 12 pairs where the longer response wins, 4 where a short "good" beats a long "bad, bad, ..."
    longer = [{"prompt": f"Topic {i}: say something.", "chosen": "words and more words " * 3, "rejected": "words"}
              for i in range(12)]
    content = [{"prompt": f"Question {i}: answer it.", "chosen": "good", "rejected": "bad, " * 12}
               for i in range(4)]
    data = write_jsonl(tmp_path / "pairs.jsonl", longer + content)
    for expert in ("--length-expert", "--no-length-expert"):
        assert rm.main(["--model", str(tiny_model_dir), "--data", data, "--output", str(tmp_path / expert.strip("-")),
                        "--batch-size", "4", "--lr", "1e-2", "--max-steps", "2", "--device", "cpu", expert]) == 0
    with_expert, without = (read_manifest(tmp_path / name) for name in ("length-expert", "no-length-expert"))
    fitted = with_expert["metrics"]["length_expert"]
    lengths = [[len(r["chosen"]), len(r["rejected"])] for r in longer + content]
    assert with_expert["config"]["length_expert"] is True and fitted["labels_longer_preferred"] == 0.75
    assert fitted["coef"] == pytest.approx(fit_length_expert(lengths)) and fitted["coef"] > 0
    assert fitted["pairs"] == 16 and fitted["feature"] == "log(1 + characters)"
    assert "length_expert" not in without["metrics"] and without["config"]["length_expert"] is False
    # the expert is part of the training loss: the first step's loss differs from the plain one's
    first = [read_log(tmp_path / name)[0]["loss"] for name in ("length-expert", "no-length-expert")]
    assert first[1] == pytest.approx(0.69, abs=0.05) and abs(first[0] - first[1]) > 0.05
