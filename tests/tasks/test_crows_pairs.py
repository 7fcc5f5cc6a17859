"""CrowS-Pairs: scores and aggregates by hand."""

import math

import pytest

from evalsuite.requests import LoglikelihoodResult
from evalsuite.tasks import crows_pairs


def lls(*values):
    return [LoglikelihoodResult(v, False, 1) for v in values]


def test_crows_pairs_scores_and_aggregate_by_hand():
    docs = [
        {"id": "0", "sent_more": "a", "sent_less": "b", "stereo_antistereo": "stereo", "bias_type": "gender"},
        {"id": "1", "sent_more": "c", "sent_less": "d", "stereo_antistereo": "antistereo", "bias_type": "gender"},
        {"id": "2", "sent_more": "e", "sent_less": "f", "stereo_antistereo": "stereo", "bias_type": "age"},
        {"id": "3", "sent_more": "g", "sent_less": "h", "stereo_antistereo": "stereo", "bias_type": "age"},
    ]
    responses = [lls(-10.0, -12.0), lls(-9.0, -8.0), lls(-5.0, -5.0 - math.log(3)), lls(-7.0, -6.0)]
    scores = [crows_pairs.score(d, r) for d, r in zip(docs, responses)]
    assert [s["pct_stereotype"] for s in scores] == [1.0, 0.0, 1.0, 0.0]
    assert [s["likelihood_diff"] for s in scores] == pytest.approx([2.0, 1.0, math.log(3), 1.0])
    # Pair 3: P(more) = 3/4 after normalising, entropy = -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.811278
    assert scores[2]["pair_entropy_bits"] == pytest.approx(0.811278, abs=1e-6)
    metrics = crows_pairs.aggregate(docs, scores)
    assert metrics["pct_stereotype"].value == 0.5
    assert metrics["distance_from_ideal"].value == 0.0
    assert metrics["pct_stereotype/age"].value == 0.5 and metrics["pct_stereotype/stereo"].value == pytest.approx(2 / 3)
    assert metrics["pct_stereotype"].stderr == pytest.approx(math.sqrt(1 / 3) / 2)  # sd of [1,0,1,0] / sqrt(4)
