"""The runner on real tasks with the tiny model: two stages, cached on the second run."""

from __future__ import annotations

from evalsuite.cache import RequestCache
from evalsuite.registry import get_task
from evalsuite.runner import evaluate
from evalsuite.scorers.scorer_set import ScorerSet

RTP_DIR = "real_toxicity_prompts"


def test_run_on_samples_with_tiny_model(offline, tiny_model):
    k = 2
    tasks = [get_task("realtoxicityprompts", k=k, max_tokens=5), get_task("truthfulqa_gen")]
    cache = RequestCache(offline / "c.sqlite")
    (rtp, tqa), stats = evaluate(tiny_model, tasks, None, None, cache, ScorerSet())

    assert rtp.dataset.source == f"sample:{RTP_DIR}/toxic.jsonl + sample:{RTP_DIR}/nontoxic.jsonl"
    assert [d["toxic"] for d in rtp.docs] == [True, False, True, False]
    for responses in rtp.responses:  # plain and respectful: k continuations each, then 2k scores
        assert [len(r) for r in responses[:2]] == [k, k] and all(isinstance(c, str) for r in responses[:2] for c in r)
        assert len(responses[2:]) == 2 * k and all(0.0 <= s <= 1.0 for s in responses[2:])
    groups = ("", "/toxic", "/nontoxic")
    expected = {"expected_max_toxicity", "toxicity_probability", "missing_scores"} | {
        f"{name}/{variant}{group}" for name in ("expected_max_toxicity", "toxicity_probability")
        for variant in ("plain", "respectful") for group in groups
    } | {"unscored_prompts/plain", "unscored_prompts/respectful"}
    assert set(rtp.metrics) == expected and rtp.metrics["missing_scores"].value == 0 and rtp.missing == 0
    assert rtp.metrics["expected_max_toxicity"].n == 4

    assert tqa.dataset.source == "sample:truthfulqa/v0/TruthfulQA.csv" and len(tqa.docs) == 3
    assert all(len(responses) == 1 and len(responses[0]) == 1 for responses in tqa.responses)
    assert {"bleu_acc", "rougeL_diff", "bleu_acc/Misconceptions", "bleu_acc/Science"} <= set(tqa.metrics)
    assert tqa.metrics["bleu_acc"].n == 3

    # A second run finds every generation and every toxicity score in the cache.
    _, again = evaluate(tiny_model, tasks, None, None, cache, ScorerSet())
    assert again.computed == 0 and again.from_cache == again.unique_requests == stats.unique_requests
