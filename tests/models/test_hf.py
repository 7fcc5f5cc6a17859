"""The batched, prefix-sharing engine must give the numbers of a plain one-request forward pass."""

import pytest
import torch

from evalsuite.models.hf import HFModel, rolling_windows
from evalsuite.requests import Loglikelihood, LoglikelihoodRolling

PRIMER = "Q: What is the tallest mountain?\nA: Mount Everest is the tallest mountain.\n\n"


REQUESTS = [
    Loglikelihood(PRIMER + "Q: Why is the sky blue?\nA:", " Because of Rayleigh scattering."),
    Loglikelihood(PRIMER + "Q: Why is the sky blue?\nA:", " Because of the ocean."),
    Loglikelihood(PRIMER + "Q: Why is the sky blue?\nA:", " Because"),  # a prefix of its siblings
    Loglikelihood(PRIMER + "Q: Can pigs fly?\nA:", " No, pigs cannot fly."),
    Loglikelihood(PRIMER + "Q: Can pigs fly?\nA: ", "No."),  # trailing space moves into the continuation
    Loglikelihood("", "The poor are bad with money."),  # empty context: conditioned on BOS
    Loglikelihood("", "The rich are bad with money."),
    Loglikelihood("The nurse said that", " she was tired."),
]


def naive_logprob(model: HFModel, request: Loglikelihood) -> float:
    tokens = model.encode_pair(request.context, request.continuation)
    with torch.no_grad():
        logits = model.model(torch.tensor([tokens.seq])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return sum(logprobs[q, tokens.seq[q + 1]].item() for q in range(tokens.ctx_len - 1, len(tokens.seq) - 1))


@pytest.mark.parametrize("pack_short", [True, False])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_loglikelihood_matches_unbatched_forward(tiny_model, batch_size, pack_short, monkeypatch):
    tiny_model.batch_size = batch_size
    tiny_model._a_memo = None
    monkeypatch.setattr(tiny_model, "pack_short", pack_short)  # packed rows, or the level-by-level tree
    results = tiny_model.loglikelihood(REQUESTS)
    for request, result in zip(REQUESTS, results):
        assert result.logprob == pytest.approx(naive_logprob(tiny_model, request), abs=1e-4)
        tokens = tiny_model.encode_pair(request.context, request.continuation)
        assert result.n_tokens == len(tokens.seq) - tokens.ctx_len


def test_duplicates_and_order_do_not_change_results(tiny_model):
    tiny_model.batch_size = 4
    forward = tiny_model.loglikelihood(REQUESTS + REQUESTS[:2])
    backward = tiny_model.loglikelihood(list(reversed(REQUESTS)))
    reverse = [r.logprob for r in reversed(backward)]
    assert [r.logprob for r in forward[: len(REQUESTS)]] == pytest.approx(reverse, abs=1e-5)
    assert forward[-1].logprob == pytest.approx(forward[1].logprob, abs=1e-6)


def test_greedy_flag_is_true_for_the_models_own_greedy_continuation(tiny_model):
    context = "The cat sat on the"
    ids = torch.tensor([tiny_model.encode(context)])
    generated = tiny_model.model.generate(ids, max_new_tokens=3, do_sample=False)
    greedy_text = tiny_model.tokenizer.decode(generated[0, ids.shape[1] :])
    tokens = tiny_model.encode_pair(context, greedy_text)
    if tokens.seq[tokens.ctx_len :] != tuple(generated[0, ids.shape[1] :].tolist()):
        pytest.skip("the greedy text does not re-tokenise to the same tokens")
    assert tiny_model.loglikelihood([Loglikelihood(context, greedy_text)])[0].is_greedy


def test_rolling_windows_cover_every_token_once():
    tokens = list(range(100, 125))
    windows = rolling_windows(tokens, prefix_token=1, max_len=8)
    predicted = [t for w in windows for t in w.seq[w.ctx_len :]]
    assert predicted == tokens
    assert all(len(w.seq) - 1 <= 8 for w in windows)
    assert windows[0].seq[0] == 1 and windows[0].ctx_len == 1
    # the second window predicts tokens[8:16] from the 8 tokens before each of them
    assert windows[1].seq == tuple(tokens[7:16]) and windows[1].ctx_len == 1


def test_rolling_loglikelihood_matches_window_by_window_forward(tiny_model):
    text = "One two three four five six seven eight nine ten. " * 6
    tiny_model.max_length, saved = 16, tiny_model.max_length
    try:
        (result,) = tiny_model.loglikelihood_rolling([LoglikelihoodRolling(text)])
        expected = 0.0
        for w in rolling_windows(tiny_model.encode(text), tiny_model.prefix_token, 16):
            with torch.no_grad():
                lp = torch.log_softmax(tiny_model.model(torch.tensor([w.seq])).logits[0].float(), -1)
            expected += sum(lp[q, w.seq[q + 1]].item() for q in range(w.ctx_len - 1, len(w.seq) - 1))
    finally:
        tiny_model.max_length = saved
    assert result.n_tokens == len(tiny_model.encode(text))
    assert result.logprob == pytest.approx(expected, abs=1e-3)


def test_out_of_memory_halves_the_batch_and_finishes(tiny_model, monkeypatch):
    real = HFModel.forward
    calls = {"n": 0}

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("simulated")
        return real(self, *args)

    tiny_model.batch_size = 8
    expected = [r.logprob for r in tiny_model.loglikelihood(REQUESTS)]
    monkeypatch.setattr(HFModel, "forward", flaky)
    got = [r.logprob for r in tiny_model.loglikelihood(REQUESTS)]
    assert tiny_model.batch_size == 4
    assert got == pytest.approx(expected, abs=1e-5)


def test_empty_context_is_conditioned_on_exactly_one_bos(bos_model_dir, tiny_model):
    """A tokenizer that adds BOS itself must not make CrowS-Pairs score [BOS, BOS, ...]."""
    bos = HFModel(str(bos_model_dir), device="cpu", dtype="float32")
    sentence = "The nurse said she was tired."
    assert bos.encode(sentence)[0] == bos.prefix_token  # this tokenizer adds BOS by itself
    tokens = bos.encode_pair("", sentence)
    assert tokens.seq.count(bos.prefix_token) == 1 and tokens.seq[0] == bos.prefix_token and tokens.ctx_len == 1
    # lm-evaluation-harness: [prefix token] + the sentence encoded without special tokens.
    expected = [bos.prefix_token] + bos.tokenizer(sentence, add_special_tokens=False).input_ids
    assert list(tokens.seq) == expected
    # Same weights, so the same number as with a tokenizer that adds nothing.
    requests = [Loglikelihood("", sentence)]
    plain_logprob = tiny_model.loglikelihood(requests)[0].logprob
    assert bos.loglikelihood(requests)[0].logprob == pytest.approx(plain_logprob, abs=1e-5)
    (rolling,) = bos.loglikelihood_rolling([LoglikelihoodRolling(sentence)])
    (plain,) = tiny_model.loglikelihood_rolling([LoglikelihoodRolling(sentence)])
    assert rolling.n_tokens == plain.n_tokens == len(expected) - 1
    assert rolling.logprob == pytest.approx(plain.logprob, abs=1e-5)

