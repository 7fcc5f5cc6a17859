"""The trainer's math against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from evalsuite.trainers.losses import (
    centring,
    fit_length_expert,
    length_feature,
    lr_at,
    pair_indices,
    ranking_loss,
    token_nll,
    token_nll_each,
    warmup_steps,
)


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    # 10 steps, 2 warm-up steps, peak 1, floor 0.1
    assert [lr_at(s, 10, 1.0, 2, 0.1) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert lr_at(6, 10, 1.0, 2, 0.1) == pytest.approx(0.55)  # half-way: 0.1 + 0.9 * (1 + cos(pi/2)) / 2
    assert lr_at(9, 10, 1.0, 2, 0.1) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 7 / 8)))  # 0.134254
    assert lr_at(9, 10, 1.0, 2, 0.1) == pytest.approx(0.134254, abs=1e-6)
    assert lr_at(50, 10, 1.0, 2, 0.1) == pytest.approx(0.1)  # past the end: the floor
    assert warmup_steps(100, 0.03) == 3 and warmup_steps(10, 0.0) == 0


def test_k2_loss_is_minus_log_sigmoid_of_the_margin():
    per_prompt, margin = ranking_loss(torch.tensor([2.0, 0.5]), [2])
    assert margin.tolist() == [1.5]
    assert per_prompt.item() == pytest.approx(math.log(1 + math.exp(-1.5)))  # 0.201413
    assert per_prompt.item() == pytest.approx(0.201413, abs=1e-6)


def test_k4_loss_averages_all_six_pairs():
    # responses best first with rewards 3, 1, 2, 0: margins of (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    per_prompt, margin = ranking_loss(torch.tensor([3.0, 1.0, 2.0, 0.0]), [4])
    assert margin.tolist() == [2.0, 1.0, 3.0, -1.0, 1.0, 2.0]
    expected = sum(math.log(1 + math.exp(-m)) for m in (2, 1, 3, -1, 1, 2)) / 6
    assert per_prompt.item() == pytest.approx(expected) and per_prompt.item() == pytest.approx(0.373705, abs=1e-6)


def test_several_prompts_in_one_batch_each_get_their_own_mean():
    per_prompt, _ = ranking_loss(torch.tensor([2.0, 0.5, 3.0, 1.0, 2.0, 0.0]), [2, 4])
    assert per_prompt.tolist() == pytest.approx([0.201413, 0.373705], abs=1e-6)
    assert pair_indices([2, 3]) == ([0, 2, 2, 3], [1, 3, 4, 4], [0, 1, 1, 1])


def test_gradient_pushes_winners_up_and_losers_down():
    rewards = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    ranking_loss(rewards, [3])[0].sum().backward()
    # d/dr of mean over pairs of softplus(-(r_w - r_l)) at 0: each pair gives -1/2 to w, +1/2 to l, over 3 pairs
    assert rewards.grad.tolist() == pytest.approx([-1 / 3, 0.0, 1 / 3])


def test_centring_is_the_squared_mean_reward_of_each_prompt():
    assert centring(torch.tensor([1.0, 3.0, -1.0, 1.0, 3.0]), [2, 3]).tolist() == [4.0, 1.0]


def test_fused_head_loss_equals_plain_autograd():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50)
    hidden = torch.randn(37, 8, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    plain = torch.nn.functional.cross_entropy(head(hidden), targets, reduction="sum")
    plain.backward()
    expected = (hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone(), plain.item())
    hidden.grad = head.weight.grad = head.bias.grad = None
    fused = token_nll(hidden, targets, head, list(head.parameters()), fused=True, chunk=16)  # three chunks
    (fused * 2.5).backward()
    assert fused.item() == pytest.approx(expected[3], rel=1e-6)
    for got, want in zip((hidden.grad, head.weight.grad, head.bias.grad), expected[:3]):
        assert torch.allclose(got, 2.5 * want, atol=1e-5)
    unfused = token_nll(hidden, targets, head, [], fused=False, chunk=16)
    assert unfused.item() == pytest.approx(expected[3], rel=1e-6)
    each = token_nll_each(hidden, targets, head, chunk=16)
    assert each.shape == (37,) and each.sum().item() == pytest.approx(expected[3], rel=1e-5)


def test_no_targets_give_zero_loss_and_zero_gradients():
    head = torch.nn.Linear(4, 10)
    hidden = torch.randn(0, 4, requires_grad=True)
    loss = token_nll(hidden, torch.zeros(0, dtype=torch.long), head, list(head.parameters()))
    loss.backward()
    assert loss.item() == 0.0 and head.weight.grad.abs().sum() == 0


def test_length_expert_is_the_logistic_fit_of_the_labels_on_log_length():
    # every pair is 99 vs 9 characters: f differs by log(100) - log(10) = log 10; the labels prefer the
    # longer one in 3 of 4 pairs, so the maximum-likelihood a solves sigmoid(a log 10) = 3/4: a = log 3 / log 10
    assert length_feature(99) - length_feature(9) == pytest.approx(math.log(10))
    lengths = ([[99, 9]] * 3 + [[9, 99]]) * 500
    assert fit_length_expert(lengths) == pytest.approx(math.log(3) / math.log(10), abs=1e-3)  # 0.4771
    assert fit_length_expert(([[9, 99]] * 3 + [[99, 9]]) * 500) == pytest.approx(-math.log(3) / math.log(10), abs=1e-3)


def test_length_expert_takes_every_ranked_pair_and_is_zero_without_length_differences():
    # K = 3, best first 30 > 20 > 10 characters, and the same reversed: no side to favour
    assert fit_length_expert([[30, 20, 10], [10, 20, 30]]) == pytest.approx(0.0, abs=1e-12)
    assert fit_length_expert([[30, 20, 10]] * 50) > 1.0  # the longer always wins: a large positive weight
    assert fit_length_expert([[12, 12], [5, 5, 5]]) == 0.0
