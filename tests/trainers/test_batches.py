"""Packed rows and padded rows give the same losses, gradients and rewards; the SFT loss covers
response tokens only."""

from __future__ import annotations

import math

import pytest
import torch

from evalsuite.models.loading import load_tokenizer, load_weights
from evalsuite.models.reward import last_token_rewards, pad_rows
from evalsuite.trainers import batches, losses, modeling, rm, sft
from evalsuite.trainers.formats import Comparison, Demonstration

DEMOS = [
    Demonstration([{"role": "user", "content": "Name three colours."}], "Red, green and blue.", "a:1"),
    Demonstration([{"role": "user", "content": "Add 2 and 3."}], "5", "a:2"),
    Demonstration([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                   {"role": "user", "content": "Write a haiku about the sea, please, with care."}],
                  "Waves fold into foam,\nthe tide keeps its old promise,\nsalt on the cold wind.", "a:3"),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def sft_loss_and_grad(model, trees, layout: str, attn: str):
    model.config._attn_implementation = attn
    batch = batches.packed(trees, 256, 0, attn, torch.float32) if layout == "packed" else batches.padded(trees, 0)
    rows, cols, targets, _ = batches.branch_targets(batch)
    model.zero_grad()
    loss = sft.ResponseNLL(model, fused=True)(**batch.model_inputs(), rows=rows, cols=cols, targets=targets)
    loss.backward()
    return loss.item(), model.model.layers[0].self_attn.q_proj.weight.grad.clone(), batch


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_padded_sft_batches_agree(tiny_model_dir, tokenizer, attn):
    model = load_weights(str(tiny_model_dir), "causal", torch.float32)
    trees = sft.encode(tokenizer, DEMOS, True, 512).trees
    packed_loss, packed_grad, packed = sft_loss_and_grad(model, trees, "packed", attn)
    padded_loss, padded_grad, padded = sft_loss_and_grad(model, trees, "padded", attn)
    assert packed.input_ids.numel() < padded.input_ids.numel()  # the point of packing: fewer positions
    assert packed.input_ids.shape[0] < len(trees)  # several sequences share a row
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert torch.allclose(packed_grad, padded_grad, atol=1e-6)


def test_loss_is_on_response_tokens_only(tiny_model_dir, tokenizer):
    model = load_weights(str(tiny_model_dir), "causal", torch.float32)
    trees = sft.encode(tokenizer, DEMOS, True, 512).trees
    ours, _, batch = sft_loss_and_grad(model, trees, "packed", "sdpa")
    _, _, targets, owner = batches.branch_targets(batch)
    assert len(targets) == sum(len(t.branches[0]) for t in trees)  # one target per response token, EOS included
    assert all(t.branches[0][-1] == tokenizer.eos_token_id for t in trees)
    reference = 0.0  # transformers' own loss with every prompt position masked out (-100)
    for tree in trees:
        ids = torch.tensor([tree.prefix + tree.branches[0]])
        labels = ids.clone()
        labels[0, : len(tree.prefix)] = -100
        reference += model(input_ids=ids, labels=labels).loss.item() * len(tree.branches[0])
    assert ours == pytest.approx(reference, rel=1e-5)


def test_sft_tokens_are_what_a_policy_sees_and_produces(tokenizer):
    from evalsuite.models.chat import prompt_text

    tree = sft.encode(tokenizer, DEMOS[:1], True, 512).trees[0]
    prompt = prompt_text(tokenizer, DEMOS[0].prompt, True)
    assert list(tree.prefix) == tokenizer(prompt, add_special_tokens=False).input_ids
    assert tokenizer.decode(tree.branches[0]) == "Red, green and blue." + tokenizer.eos_token


def test_over_long_prompts_lose_their_start_and_long_responses_are_refused(tokenizer):
    from evalsuite.errors import EvalsuiteError

    long = sft.encode(tokenizer, DEMOS, True, 40)
    assert long.truncated >= 1 and all(t.size <= 40 for t in long.trees)
    with pytest.raises(EvalsuiteError, match=r"a:3: the response is \d+ tokens, too long for --max-length 12"):
        sft.encode(tokenizer, DEMOS, True, 12)
    skipped = sft.encode(tokenizer, DEMOS, True, 12, overlong="skip")
    assert skipped.skipped == ["a:3"] and len(skipped.trees) == 2


COMPARISONS = [
    Comparison([{"role": "user", "content": "Is the sea salty?"}], ["Yes, it is.", "No.", "Maybe, who knows?"], "c:1"),
    Comparison([{"role": "user", "content": "Say hi"}], ["Hi there!", "Go away."], "c:2"),
]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_reward_trees_give_the_rewards_of_separate_passes(tiny_model_dir, tokenizer, attn):
    causal = load_weights(str(tiny_model_dir), "causal", torch.float32)
    torch.manual_seed(0)
    model = modeling.reward_model_from(causal, pad_id=0).eval()
    model.config._attn_implementation = attn
    encoded = rm.encode(tokenizer, COMPARISONS, True, 512)
    assert [len(t.branches) for t in encoded.trees] == [3, 2] and all(len(t.prefix) > 10 for t in encoded.trees)
    scorer = rm.BranchRewards(model)
    with torch.no_grad():
        packed = batches.packed(encoded.trees, 512, 0, attn, torch.float32)
        padded = batches.padded(encoded.trees, 0)
        tree_rewards = scorer(**packed.model_inputs(), rows=packed.span_row, cols=batches.branch_ends(packed)[1])
        padded_rewards = scorer(**padded.model_inputs(), rows=None, cols=None)
        texts = [rm.dialogue_text(tokenizer, c.prompt, r, True) for c in COMPARISONS for r in c.responses]
        alone = [last_token_rewards(model, *pad_rows([tokenizer(t, add_special_tokens=False).input_ids], 0, "cpu"))
                 for t in texts]
    assert packed.input_ids.numel() < padded.input_ids.numel()  # each prompt runs once for all its responses
    assert torch.allclose(tree_rewards, torch.cat(alone), atol=1e-5)
    assert torch.allclose(padded_rewards, torch.cat(alone), atol=1e-5)


def test_length_expert_enters_the_loss_but_not_the_rewards_or_the_accuracy(tiny_model_dir, tokenizer):
    from types import SimpleNamespace

    causal = load_weights(str(tiny_model_dir), "causal", torch.float32)
    torch.manual_seed(0)
    model = rm.BranchRewards(modeling.reward_model_from(causal, pad_id=0).eval())
    encoded = rm.encode(tokenizer, COMPARISONS, True, 512)
    assert encoded.lengths == [[11, 3, 17], [9, 8]]
    config = SimpleNamespace(max_length=512, center_coef=0.0, eval_batch_size=0, batch_size=2, length_expert=True)
    stage = rm.RMStage(encoded, encoded, True, config, 0, "sdpa")
    assert stage.expert == pytest.approx(losses.fit_length_expert([[11, 3, 17], [9, 8]]))
    batch = stage.batch([0, 1])
    with torch.no_grad():
        rewards = stage.rewards(model, batch)
        loss, counts = stage.loss(model, batch)
    f = [losses.length_feature(n) for n in (11, 3, 17, 9, 8)]
    r = [x + stage.expert * fx for x, fx in zip(rewards.tolist(), f)]
    def nll(m):
        return math.log1p(math.exp(-m))
    first = (nll(r[0] - r[1]) + nll(r[0] - r[2]) + nll(r[1] - r[2])) / 3
    assert loss.item() == pytest.approx(first + nll(r[3] - r[4]), rel=1e-5)
    own = [rewards[0] > rewards[1], rewards[0] > rewards[2], rewards[1] > rewards[2], rewards[3] > rewards[4]]
    assert counts["correct"].item() == sum(bool(c) for c in own) and counts["pairs"].item() == 4
    plain = rm.RMStage(encoded, encoded, True, SimpleNamespace(**{**vars(config), "length_expert": False}), 0, "sdpa")
    with torch.no_grad():
        plain_loss, _ = plain.loss(model, plain.batch([0, 1]))
    assert plain.expert is None and plain_loss.item() != pytest.approx(loss.item())
