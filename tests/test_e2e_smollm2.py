"""End to end on the real default model (SmolLM2-135M-Instruct) and the real datasets."""

import pytest
import torch

from evalsuite.cli import main
from evalsuite.models.hf import HFModel
from evalsuite.registry import get_task
from tests.conftest import read_results
from tests.models.test_hf import naive_logprob

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return HFModel("default", device="cpu", dtype="float32", batch_size=8)


def test_each_loglikelihood_matches_a_single_request_forward(smollm2, data_dir):
    requests = []
    for name, n in (("truthfulqa_mc2", 1), ("crows_pairs", 3), ("winogender", 2)):
        task = get_task(name)
        for doc in task.load(data_dir).docs[:n]:
            requests += task.requests(doc)
    results = smollm2.loglikelihood(requests)
    worst = max(abs(r.logprob - naive_logprob(smollm2, q)) for q, r in zip(requests, results))
    assert worst < 1e-3


def test_default_model_run_on_real_data(data_dir, tmp_path):
    out = tmp_path / "run"
    code = main(["run", "--tasks", "truthfulqa_mc1,truthfulqa_mc2,crows_pairs,winogender", "--limit", "8",
                 "--data-dir", str(data_dir), "--output", str(out), "--cache", str(tmp_path / "c.sqlite"),
                 "--device", "cpu"])
    assert code == 0
    record = read_results(out)
    assert record["model"]["class"] == "LlamaForCausalLM" and record["model"]["n_parameters"] > 100_000_000
    mc2 = record["tasks"]["truthfulqa_mc2"]["metrics"]["acc"]
    assert 0.0 < mc2 < 1.0
    assert record["tasks"]["crows_pairs"]["metrics"]["pair_entropy_bits"] <= 1.0
