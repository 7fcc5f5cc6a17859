"""Pairwise judges on tiny random models: the rm: judge is sigmoid of the reward difference, the lm:
judge reads the two verdict tokens exactly as a plain transformers loop does, labels match by text."""

from __future__ import annotations

import json
import math

import pytest
import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.models.reward import RewardModel
from evalsuite.scorers import pairwise as pj

ITEMS = [("Name a colour.", "Red.", "I do not know."), ("Add 2 and 3.", "5", "It is 6, or maybe 7."),
         ("Name a colour.", "I do not know.", "Red.")]


def test_rm_judge_is_the_sigmoid_of_the_reward_difference(tiny_rm_dir):
    judge = pj.load_pair_judge(f"rm:{tiny_rm_dir}", device="cpu")
    reward = RewardModel(str(tiny_rm_dir), device="cpu")
    got = judge.prefer(ITEMS)
    for (prompt, a, b), p in zip(ITEMS, got):
        ra, rb = reward.score([([{"role": "user", "content": prompt}], a), ([{"role": "user", "content": prompt}], b)])
        assert p == pytest.approx(1 / (1 + math.exp(-(ra - rb))), abs=1e-6)
    assert got[0] == pytest.approx(1 - got[2], abs=1e-6)  # swapping the outputs flips it
    assert judge.describe()["kind"] == "rm" and not judge.both_orders


def test_a_causal_lm_is_not_a_reward_judge(tiny_model_dir):
    with pytest.raises(EvalsuiteError, match="is a causal language model, not a reward model"):
        pj.load_pair_judge(f"rm:{tiny_model_dir}", device="cpu")


def test_lm_judge_matches_a_plain_transformers_loop(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    judge = pj.load_pair_judge(f"lm:{tiny_model_dir}", device="cpu")
    got = judge.prefer(ITEMS)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    a_id, b_id = (tokenizer(v, add_special_tokens=False).input_ids[-1] for v in pj.VERDICTS)
    for item, p in zip(ITEMS, got):
        ids = tokenizer(pj.lm_prompt(*item), return_tensors="pt").input_ids
        with torch.no_grad():
            logprobs = model(ids).logits[0, -1].log_softmax(-1)
        expected = 1 / (1 + math.exp(-(logprobs[a_id] - logprobs[b_id]).item()))
        assert p == pytest.approx(expected, abs=1e-4)
    assert judge.describe()["template_sha256"] == pj.template_sha256()


def test_labels_match_by_text_in_either_order(tmp_path):
    file = tmp_path / "annotations.json"
    file.write_text(json.dumps([
        {"instruction": "Name a colour.", "output_1": "Red.", "output_2": "I do not know.", "preference": 1},
        {"instruction": "Add 2 and 3.", "output_1": "It is 6, or maybe 7.", "output_2": "5", "preference": 1.75},
        {"instruction": "Say hi.", "output_1": "Hi", "output_2": "Hello", "preference": 0},
    ]))
    labels = pj.load_pair_judge(f"labels:{file}")
    assert labels.prefer([ITEMS[0], ("Add 2 and 3.", "It is 6, or maybe 7.", "5"), ("Say hi.", "Hi", "Hello")]) == [
        1.0, 0.25, 0.5]
    assert labels.shown("Name  a colour.", "Red.", "I do not know.") == "model_first"  # whitespace is normalised
    assert labels.shown("Add 2 and 3.", "5", "It is 6, or maybe 7.") == "baseline_first"
    assert labels.shown("Add 2 and 3.", "5", "4") is None
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(json.dumps({"prompt": "p", "a": "x", "b": "y", "preference": 2}) + "\n")
    assert pj.Labels("labels", str(jsonl)).lookup("p", "x", "y") == 0.0


def test_bad_labels_and_specs_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "a": "x"}) + "\n")
    with pytest.raises(EvalsuiteError, match="line 1: a label needs"):
        pj.load_pair_judge(f"labels:{bad}")
    with pytest.raises(EvalsuiteError, match="Unknown judge 'gpt4'"):
        pj.load_pair_judge("gpt4")
    with pytest.raises(EvalsuiteError, match="does not exist"):
        pj.load_pair_judge(f"labels:{tmp_path / 'none.json'}")


def test_orders():
    assert pj.orders_for("lm", None, "p", "a", "b", False, "s") == ["model_first", "baseline_first"]
    assert pj.orders_for("rm", None, "p", "a", "b", False, "s") == ["model_first"]
    one = {pj.orders_for("lm", None, "p", "a", "b", True, f"s{i}")[0] for i in range(20)}
    assert one == {"model_first", "baseline_first"}  # seeded per pair, both orders occur
    assert pj.model_preference("baseline_first", 0.8) == pytest.approx(0.2)
