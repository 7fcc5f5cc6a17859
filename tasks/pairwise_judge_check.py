"""How far to trust a pairwise judge: its agreement with human preference pairs.

Every HH-RLHF test comparison (``file=``, default ``hh_rlhf/helpful-base/test.jsonl.gz``; rows
whose chosen and rejected dialogues share everything before the last reply) is judged like a
``pairwise_winrate`` pair, with the human-chosen reply in the model's place: both orders for an
``lm:`` judge, one for ``rm:``. ``accuracy`` is the share of pairs where the judge prefers the
chosen reply (a tie, including two orders that disagree, counts one half), the same rule as a win
rate, so the two numbers are published side by side. A failed judge call is counted in
``judge_missing`` and left out.
"""

from __future__ import annotations

from typing import Any

from evalsuite.data import load_source
from evalsuite.registry import task
from evalsuite.requests import Request
from evalsuite.scorers import pairwise as pj
from evalsuite.stats import Metric
from evalsuite.task import Dataset, Doc, Task
from evalsuite.tasks.pairwise_winrate import (
    HH_RLHF,
    HH_SAMPLE,
    check_judge,
    judge_requests,
    pair_result,
    parse_hh,
    summary_metrics,
)


@task
def pairwise_judge_check(judge: str = "lm:default", file: str = HH_RLHF, one_order: bool = False) -> Task:
    labels = check_judge(judge)

    def load(data_dir) -> Dataset:
        return load_source("pairwise_judge_check", file, data_dir, parse_hh, HH_SAMPLE)

    def requests(doc: Doc) -> list[Request]:
        return judge_requests(doc, doc["chosen"], doc["rejected"], judge, labels, one_order)

    def score(doc: Doc, responses: list[Any]) -> dict[str, Any]:
        orders = pj.orders_for(pj.split_spec(judge)[0], labels, doc["prompt"], doc["chosen"], doc["rejected"],
                               one_order, f"{doc['id']}|{judge}")
        result = pair_result(orders, responses)
        return {"output": doc["chosen"], "baseline_output": doc["rejected"], **result}

    def aggregate(docs: list[Doc], scores: list[dict[str, Any]]) -> dict[str, Metric]:
        summary = summary_metrics(scores)
        missing = sum(s["outcome"] == "excluded" for s in scores)
        return {
            "accuracy": summary["win_rate"], "accuracy_ci_low": summary["win_rate_ci_low"],
            "accuracy_ci_high": summary["win_rate_ci_high"], "mean_p_chosen": summary["mean_preference"],
            "position_bias": summary["position_bias"], "order_disagreement": summary["order_disagreement"],
            "chosen_preferred": summary["wins"], "ties": summary["ties"], "rejected_preferred": summary["losses"],
            "judge_missing": Metric(float(missing), None, len(scores)),
        }

    return Task(
        name="pairwise_judge_check", load=load, requests=requests, score=score, aggregate=aggregate,
        primary_metric="accuracy", group="judge",
        higher_is_better={"accuracy": True, "mean_p_chosen": True, "judge_missing": False}, version="1",
        data=f"{HH_RLHF} (human preference pairs)",
        description="A pairwise judge's agreement with HH-RLHF's human choices (ties count one half).",
    )
