"""The batched, prefix-sharing engine must give the numbers of a plain one-request forward pass."""

import pytest
import torch

from evalsuite.models.hf import HFModel, rolling_windows
from evalsuite.requests import Generate, Loglikelihood, LoglikelihoodRolling

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
    assert [r.logprob for r in forward[: len(REQUESTS)]] == pytest.approx([r.logprob for r in reversed(backward)], abs=1e-5)
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


def test_greedy_generation_matches_transformers_generate(tiny_model):
    tiny_model.batch_size = 4
    prompts = ["The cat sat on the", "Once upon a time there", "Q: What?\nA:"]
    outputs = tiny_model.generate([Generate(p, max_tokens=6) for p in prompts])
    for prompt, (text,) in zip(prompts, outputs):
        ids = torch.tensor([tiny_model.encode(prompt)])
        ref = tiny_model.model.generate(ids, max_new_tokens=6, do_sample=False, attention_mask=torch.ones_like(ids))
        assert text == tiny_model.tokenizer.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)


def test_sampling_is_seeded_and_stops_at_stop_sequences(tiny_model):
    request = Generate("Hello", max_tokens=8, temperature=1.0, n=3, seed=7, stop=("e",))
    first = tiny_model.generate([request])[0]
    again = tiny_model.generate([request, Generate("Other prompt", max_tokens=4)])[0]
    assert first == again and len(first) == 3
    assert all("e" not in text for text in first)


@pytest.mark.parametrize("prefill_tokens", [4096, 60])  # 60: prompts join in groups, a passage's questions split
def test_generation_with_shared_passages_matches_one_prompt_at_a_time(tiny_model, prefill_tokens, monkeypatch):
    monkeypatch.setattr("evalsuite.models.generation.PREFILL_TOKENS", prefill_tokens)
    passage = "The river runs through the old town, past the mill and under three stone bridges. " * 3
    prompts = [passage + f"Question {q}\nAnswer:" for q in ("one?", "two, please?", "three")] + ["Unrelated prompt:"]
    tiny_model.batch_size = 8
    together = tiny_model.generate([Generate(p, max_tokens=5) for p in prompts])
    tiny_model.batch_size = 1
    alone = [tiny_model.generate([Generate(p, max_tokens=5)])[0] for p in prompts]
    assert together == alone


def test_refilled_batch_gives_each_prompt_its_own_greedy_answer(tiny_model):
    # Two rows, five prompts of different lengths and token limits: rows finish at different steps
    # and waiting prompts join the running batch; each answer must equal the prompt decoded alone.
    prompts = ["A", "The cat sat on the mat and then", "Q: Why?\nA:", "One two three", "Hello there, my old friend"]
    requests = [Generate(p, max_tokens=m) for p, m in zip(prompts, [2, 7, 3, 9, 1])]
    tiny_model.batch_size = 1
    alone = [tiny_model.generate([r])[0] for r in requests]
    tiny_model.batch_size = 2
    assert tiny_model.generate(requests) == alone


def test_more_samples_than_rows_still_run(tiny_model):
    tiny_model.batch_size = 2
    (texts,) = tiny_model.generate([Generate("The cat", max_tokens=3, temperature=1.0, n=5, seed=1)])
    assert len(texts) == 5


def test_cpu_weights_leave_the_checkpoint_map_with_the_same_values(tiny_model_dir):
    """Weights are copied out of the safetensors memory map (whose pages are handed back), linear
    ones transposed in memory; the model computes what the freshly loaded one does."""
    from transformers import AutoModelForCausalLM

    from evalsuite.models.cpu_weights import _checkpoint_mappings, prepare_cpu_weights

    reference, model = (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, use_safetensors=True).eval()
        for _ in range(2)
    )
    mapped = _checkpoint_mappings()

    def in_map(tensors) -> bool:
        return any(lo <= t.data_ptr() < hi for t in tensors for lo, hi in mapped)

    assert in_map(model.parameters())  # loaded weights do live in the map
    prepare_cpu_weights(model)
    assert not in_map([*model.parameters(), *model.buffers()])
    q = model.model.layers[0].self_attn.q_proj.weight
    assert q.stride() == (1, q.shape[0])  # (out, in) shape over an (in, out) contiguous matrix
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied, one tensor
    ids = torch.tensor([[1, 5, 9, 200, 33, 7]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-5)
