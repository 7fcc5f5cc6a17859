"""PPO's math against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from evalsuite.trainers import ppo_core


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_kl_estimators():
    logp, ref = t(-1.0, -2.0), t(-1.5, -1.0)
    assert torch.allclose(ppo_core.kl_estimate(logp, ref, "k1"), t(0.5, -1.0))
    # k3 = exp(ref - logp) - 1 - (ref - logp): exp(-0.5) - 0.5 and e - 2
    assert torch.allclose(ppo_core.kl_estimate(logp, ref, "k3"), t(math.exp(-0.5) - 0.5, math.e - 2.0))


def test_shaped_rewards_put_the_score_on_the_last_real_token():
    kl = t([0.5, -1.0, 0.0], [0.2, 0.0, 0.0])
    mask = t([1, 1, 0], [1, 0, 0])
    rewards = ppo_core.shaped_rewards(t(2.0, -1.0), kl, mask, beta=0.1)
    assert torch.allclose(rewards, t([-0.05, 0.1 + 2.0, 0.0], [-0.02 - 1.0, 0.0, 0.0]))


def test_gae_by_hand():
    rewards, values = t([1.0, 0.0, 2.0], [1.0, 0.0, 0.0]), t([0.5, 1.0, 1.5], [0.5, 9.0, 9.0])
    mask = t([1, 1, 1], [1, 0, 0])
    adv, ret = ppo_core.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # row 0: delta = (1.5, 0.5, 0.5); A2 = 0.5, A1 = 0.5 + 0.5 * 0.5, A0 = 1.5 + 0.5 * 0.75
    # row 1: one real token, the padding's values carry nothing back: A0 = 1 - 0.5
    assert torch.allclose(adv, t([1.875, 0.75, 0.5], [0.5, 0.0, 0.0]))
    assert torch.allclose(ret, t([2.375, 1.75, 2.0], [1.0, 0.0, 0.0]))
    adv, _ = ppo_core.gae(rewards[:1], values[:1], mask[:1], gamma=0.5, lam=1.0)
    # delta = (1 + 0.5 - 0.5, 0 + 0.75 - 1, 2 - 1.5) = (1, -0.25, 0.5); A1 = -0.25 + 0.25 = 0; A0 = 1
    assert torch.allclose(adv, t([1.0, 0.0, 0.5]))


def test_whiten_over_real_tokens_only():
    out = ppo_core.whiten(t([1.0, 2.0], [3.0, 100.0]), t([1, 1], [1, 0]))
    assert torch.allclose(out, t([-1.0, 0.0], [1.0, 0.0]), atol=1e-6)  # mean 2, unbiased variance 1


def test_clipped_policy_loss_and_its_gradient():
    old = torch.zeros(1, 3)
    logp = torch.log(t([1.5, 0.5, 1.0])).requires_grad_(True)
    adv, mask = t([1.0, 1.0, -2.0]), torch.ones(1, 3)
    loss, stats = ppo_core.policy_loss(logp, old, adv, mask, clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5; token 2: 2.0
    assert float(loss.detach()) == pytest.approx((-1.2 - 0.5 + 2.0) / 3)
    assert float(stats["clip_frac"]) == pytest.approx(1 / 3)
    assert float(stats["approx_kl"]) == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 3)
    loss.backward()
    # the clipped token gets no gradient; the others -A * ratio / 3
    assert torch.allclose(logp.grad, t([0.0, -0.5 / 3, 2.0 / 3]))


def test_clipped_value_loss():
    loss, stats = ppo_core.value_loss(t([1.0, 2.0]), t([0.5, 2.0]), t([2.0, 1.0]), torch.ones(1, 2), clip=0.2)
    # token 0: clipped value 0.7, (0.7 - 2)^2 = 1.69 beats (1 - 2)^2; token 1: both 1
    assert float(loss) == pytest.approx(0.5 * (1.69 + 1.0) / 2)
    assert float(stats["value_clip_frac"]) == pytest.approx(0.5)


def test_adaptive_kl_controller():
    kl = ppo_core.AdaptiveKL(0.1, target=1.0, horizon=100)
    assert kl.update(2.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))  # error clipped to +0.2
    kl = ppo_core.AdaptiveKL(0.1, target=1.0, horizon=100)
    assert kl.update(0.9, 10) == pytest.approx(0.1 * (1 - 0.1 * 10 / 100))
    assert ppo_core.AdaptiveKL(0.1).update(50.0, 10) == 0.1  # target 0: fixed


def test_ema_of_the_weights():
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    ema = ppo_core.EMA(layer, 0.75)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    ema.update()
    ema.copy_to()
    assert float(layer.weight) == pytest.approx(0.25)


def test_entropy_of_uniform_and_certain():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -1e4, -1e4, -1e4]])
    assert torch.allclose(ppo_core.entropy_of(logits), torch.tensor([math.log(4), 0.0]), atol=1e-6)
