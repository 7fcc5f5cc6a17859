"""Generation: greedy equals transformers' generate, seeded sampling, shared passages, continuous batching."""

import pytest
import torch

from evalsuite.models.generation import prefill_groups
from evalsuite.models.hf import HFModel
from evalsuite.requests import Generate


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


def test_prefill_groups_cut_where_padding_would_grow(monkeypatch):
    monkeypatch.setattr("evalsuite.models.generation.PREFILL_TOKENS", 4096)
    # 4 x 246 = 984 slots for 797 tokens (19% padding); adding 112 would pad 26%
    assert prefill_groups([246, 220, 205, 126, 112, 90, 52, 46]) == [[0, 1, 2, 3], [4, 5], [6, 7]]
    assert prefill_groups([50, 300]) == [[0], [1]]  # the longer one would pad the short one 6x
    assert prefill_groups([100] * 50) == [list(range(40)), list(range(40, 50))]  # the token cap
    assert prefill_groups([3000, 2000, 1000]) == [[0], [1], [2]] and prefill_groups([]) == []


def test_sampled_tokens_do_not_depend_on_how_prompts_are_grouped(tiny_model, monkeypatch):
    prompts = [tiny_model.encode(t) for t in ("A", "The cat sat on the mat and then it slept all day long", "Q: Why?")]
    requests = [Generate("", max_tokens=6, temperature=1.0, seed=s) for s in range(3)]
    tiny_model.batch_size = 4
    grouped = tiny_model.sample_tokens(requests, prompts)
    monkeypatch.setattr("evalsuite.models.generation.PREFILL_PADDING", 1.0)  # one group, padded
    assert tiny_model.sample_tokens(requests, prompts) == grouped


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


def test_generation_out_of_memory_halves_the_batch_and_finishes(tiny_model, monkeypatch):
    real = HFModel.forward
    calls = {"n": 0}

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:  # mid-decoding, after the prefill
            raise torch.OutOfMemoryError("simulated")
        return real(self, *args)

    tiny_model.batch_size = 4
    requests = [Generate(p, max_tokens=5) for p in ("The cat", "A dog", "Once upon", "Q: Why?\nA:")]
    expected = tiny_model.generate(requests)
    monkeypatch.setattr(HFModel, "forward", flaky)
    assert tiny_model.generate(requests) == expected
    assert tiny_model.batch_size == 2
