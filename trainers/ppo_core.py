"""The math of PPO for language models, as small functions on padded (episodes, response tokens)
tensors with a ``mask`` of real tokens; each is checked against hand-computed values in the tests.

An episode is a prompt and a sampled response of T tokens (its EOS included when it stopped). Token
t is an action taken in state "prompt + tokens before t". With ``logp`` the policy's and ``ref`` the
frozen SFT policy's log-probabilities of the tokens taken:

- ``kl_estimate``: per-token KL to the SFT policy, k1 = ``logp - ref`` (unbiased, can be negative
  per token) or k3 = ``exp(ref - logp) - 1 - (ref - logp)`` (non-negative, lower variance);
- ``shaped_rewards``: ``r_t = -beta * kl_t``, plus the reward model's score on the last token;
- ``gae``: advantages ``A_t = sum_k (gamma lambda)^k delta_{t+k}``,
  ``delta_t = r_t + gamma V_{t+1} - V_t`` (``V_T = 0``: the episode ends), and returns ``A_t + V_t``;
- ``whiten``: advantages to mean 0 and variance 1 over every real token of the batch;
- ``policy_loss``: the clipped surrogate ``max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))``;
- ``value_loss``: ``0.5 max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2)``;
- ``AdaptiveKL``: Ziegler et al.'s controller, ``beta <- beta (1 + clip(KL / target - 1, -0.2, 0.2) n / horizon)``.

Token means are over real tokens only (``masked_mean``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The unbiased variance over the real tokens."""
    mean = masked_mean(values, mask)
    n = mask.sum()
    return ((values - mean) ** 2 * mask).sum() / (n - 1).clamp(min=1)


def kl_estimate(logp: torch.Tensor, ref: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || SFT) from the log-probabilities of the sampled tokens."""
    if kind == "k1":
        return logp - ref
    if kind == "k3":
        log_ratio = ref - logp
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}")


def shaped_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """``-beta * kl`` at every response token, plus each episode's score at its last real token."""
    rewards = -beta * kl * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rows = torch.arange(len(scores), device=scores.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns): generalised advantage estimation backwards over each response; the
    value after the last real token is 0 (padding carries nothing back)."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros_like(running)
    for t in reversed(range(rewards.shape[1])):
        real = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * real
        advantages[:, t] = running
        next_value = values[:, t] * real
    return advantages, (advantages + values) * mask


def whiten(values: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor | None = None,
           var: torch.Tensor | None = None, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` on real tokens (0 on padding); the mean and variance are this
    batch's unless given (over every process's batch, say)."""
    mean = masked_mean(values, mask) if mean is None else mean
    var = masked_var(values, mask) if var is None else var
    return (values - mean) * torch.rsqrt(var + eps) * mask


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (token mean) and its diagnostics: ``clip_frac``, the share of tokens
    where the clipped term won (their gradient is zero), and ``approx_kl``, the token mean of
    ``0.5 (log ratio)^2``, an estimate of KL(old policy || new) that is never negative."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clip_frac": masked_mean((clipped > unclipped).float(), mask),
                 "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped value loss (token mean) and the share of tokens where the clipped term won."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    plain, far = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(plain, far), mask)
    with torch.no_grad():
        stats = {"value_clip_frac": masked_mean((far > plain).float(), mask)}
    return loss, stats


def entropy_of(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each row's softmax (nats)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def clip_scores(scores: torch.Tensor, limit: float) -> torch.Tensor:
    return scores.clamp(-limit, limit) if limit > 0 else scores


@dataclass
class AdaptiveKL:
    """The KL coefficient: fixed (``target`` 0) or adapted towards a target KL per episode over
    ``horizon`` episodes (Ziegler et al. 2019)."""

    beta: float
    target: float = 0.0
    horizon: int = 10000

    def update(self, kl: float, episodes: int) -> float:
        if self.target > 0:
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.beta *= 1.0 + error * episodes / self.horizon
        return self.beta


class EMA:
    """An exponential moving average of the policy's weights, ``w_ema <- d w_ema + (1 - d) w``
    after each optimizer step (InstructGPT: d = 0.992); saved with the training state."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        for s, saved in zip(self.shadow, state["shadow"]):
            s.copy_(saved)

    @torch.no_grad()
    def copy_to(self) -> None:
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)
