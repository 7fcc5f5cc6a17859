"""The pairwise_winrate and pairwise_judge_check tasks through ``evalsuite run`` on real data: the
judge's numbers recomputed from the reward model directly, exclusions counted, the record's samples
holding every order judged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.models.reward import RewardModel
from evalsuite.tasks.pairwise_winrate import parse_hh
from tests.conftest import read_results


def run(model: Path, tasks: str, data_dir: Path, out: Path, limit: int = 4) -> dict:
    assert main(["run", "--model", str(model), "--tasks", tasks, "--limit", str(limit), "--data-dir", str(data_dir),
                 "--device", "cpu", "--cache", str(out.parent / "cache.sqlite"), "--output", str(out)]) == 0
    return read_results(out)


def samples(out: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (out / "samples" / f"{task}.jsonl").read_text().splitlines()]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_judge_check_accuracy_is_the_reward_models_on_human_pairs(data_dir, tiny_model_dir, tiny_rm_dir, tmp_path):
    out = tmp_path / "check"
    record = run(tiny_model_dir, f"pairwise_judge_check:judge=rm:{tiny_rm_dir}", data_dir, out, limit=6)
    docs = parse_hh(data_dir / "hh_rlhf" / "helpful-base" / "test.jsonl.gz")[:6]
    reward = RewardModel(str(tiny_rm_dir), device="cpu")
    expected = []
    for doc in docs:
        messages = [{"role": "user", "content": doc["prompt"]}]
        chosen, rejected = reward.score([(messages, doc["chosen"]), (messages, doc["rejected"])])
        expected.append(sigmoid(chosen - rejected))
    got = [s["scores"]["preference"] for s in samples(out, "pairwise_judge_check")]
    assert got == pytest.approx(expected, abs=1e-5)
    metrics = record["tasks"]["pairwise_judge_check"]["metrics"]
    wins = sum(p > 0.5 for p in expected)
    assert metrics["accuracy"] == pytest.approx(wins / 6)
    assert metrics["chosen_preferred"] + metrics["rejected_preferred"] == 6
    assert metrics["judge_missing"] == 0


def test_winrate_against_alpaca_eval_baseline_with_labels(data_dir, tiny_model_dir, tmp_path):
    """A labels: judge needs the model's exact outputs: run once to get them, label them, run again."""
    first = tmp_path / "first"
    task = f"pairwise_winrate:judge=lm:{tiny_model_dir}:max_tokens=8:temperature=1.0:seed=5"
    run(tiny_model_dir, task, data_dir, first, limit=3)
    rows = samples(first, "pairwise_winrate")
    judged = [r for r in rows if r["scores"]["outcome"] != "excluded"]
    assert judged, "the sampled outputs should not all be empty"
    for r in judged:  # both orders judged, each a probability
        assert set(r["scores"]["by_order"]) == {"model_first", "baseline_first"}
        assert all(0 <= p <= 1 for p in r["scores"]["by_order"].values())
    labels = tmp_path / "labels.jsonl"
    prefs = [1, 2, 1.5]  # model preferred, baseline preferred, a tie
    labels.write_text("".join(json.dumps({"prompt": r["doc"]["prompt"], "a": r["scores"]["output"],
                                          "b": r["scores"]["baseline_output"], "preference": p}) + "\n"
                              for r, p in zip(judged, prefs)))
    second = tmp_path / "second"
    task = f"pairwise_winrate:judge=labels:{labels}:max_tokens=8:temperature=1.0:seed=5"
    metrics = run(tiny_model_dir, task, data_dir, second, limit=3)["tasks"]["pairwise_winrate"]["metrics"]
    outcomes = {1: 1.0, 2: 0.0, 1.5: 0.5}
    expected = [outcomes[p] for p in prefs[: len(judged)]]
    assert metrics["win_rate"] == pytest.approx(sum(expected) / len(expected))
    assert metrics["wins"] == expected.count(1.0) and metrics["losses"] == expected.count(0.0)
    assert metrics["excluded"] == 3 - len(judged)
