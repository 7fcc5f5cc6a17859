"""The math of the trainer, each piece checked against hand-computed values in the tests.

- ``lr_at``: linear warm-up, then cosine decay to ``min_ratio`` of the peak (InstructGPT: 10%).
- ``token_nll``: the summed negative log-likelihood of target tokens from final hidden states,
  through the model's output head, a chunk of positions at a time. Only the positions that are
  scored go through the vocabulary projection (SFT scores response tokens only), and the head's
  gradients are computed chunk by chunk in the forward pass, so the logits of all positions never
  exist at once (49k-word vocabularies make them the largest tensor of a step otherwise).
- ``pair_indices`` + ``ranking_loss``: InstructGPT's reward-model loss. A prompt with K ranked
  responses contributes all K-choose-2 pairs (w better than l), ``-log sigmoid(r_w - r_l)``
  averaged over its pairs: one batch element per prompt, one reward per response.
- ``centring``: the optional reward-centring term, ``(mean reward of a prompt's responses)^2``.
- ``fit_length_expert`` + ``length_feature``: the reward model's optional length expert (a product
  of experts): a one-number model of how much the labels prefer longer responses, fitted on the
  training pairs alone and added to every reward in the loss only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def warmup_steps(total_steps: int, ratio: float) -> int:
    return math.ceil(total_steps * ratio)


def lr_at(step: int, total_steps: int, peak: float, warmup: int, min_ratio: float) -> float:
    """The learning rate of optimizer step ``step`` (0-based): ``peak * (step + 1) / warmup`` while
    warming up (no step runs at 0), then ``peak * (min + (1 - min) * (1 + cos(pi * p)) / 2)`` with
    ``p = (step - warmup) / (total - warmup)`` going from 0 towards 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


# --- token loss ----------------------------------------------------------------------------------

CHUNK = 1024  # positions projected onto the vocabulary at once (200 MB of float32 logits for 49k words)


def token_nll(hidden: torch.Tensor, targets: torch.Tensor, logits_fn: Callable, params: list[torch.Tensor],
              fused: bool = True, chunk: int = CHUNK) -> torch.Tensor:
    """Sum over positions of ``-log softmax(logits_fn(hidden))[target]`` (float32, differentiable).

    ``params`` are the head's parameters that ``logits_fn`` uses. ``fused`` computes the head's
    gradients chunk by chunk during the forward pass (``_FusedHeadNLL``); without it, plain autograd
    keeps every chunk's logits until the backward pass (needed where parameters are gathered only
    inside the module's own forward, as with FSDP or DeepSpeed ZeRO-3).
    """
    if not fused:
        return sum(F.cross_entropy(logits_fn(hidden[s : s + chunk]).float(), targets[s : s + chunk], reduction="sum")
                   for s in range(0, max(1, hidden.shape[0]), chunk))
    return _FusedHeadNLL.apply(hidden, targets, logits_fn, chunk, *params)


class _FusedHeadNLL(torch.autograd.Function):
    """The summed token NLL whose gradients (for the hidden states and the head's parameters) are
    computed in the forward pass, one chunk of positions at a time; backward only scales them.
    Valid because the result is a scalar loss: its gradient is ``grad_output`` times these."""

    @staticmethod
    def forward(ctx, hidden, targets, logits_fn, chunk, *params):
        grad_hidden = torch.zeros_like(hidden)
        grad_params = [torch.zeros_like(p) for p in params]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            piece = hidden[start : start + chunk].detach().requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(logits_fn(piece).float(), targets[start : start + chunk], reduction="sum")
                grads = torch.autograd.grad(loss, [piece, *params], allow_unused=True)
            grad_hidden[start : start + chunk] = grads[0]
            for acc, g in zip(grad_params, grads[1:]):
                if g is not None:
                    acc += g
            total += loss.detach()
        ctx.save_for_backward(grad_hidden, *grad_params)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, *grad_params = ctx.saved_tensors
        return (grad_hidden * grad_output.to(grad_hidden.dtype), None, None, None,
                *(g * grad_output.to(g.dtype) for g in grad_params))


def token_nll_each(hidden: torch.Tensor, targets: torch.Tensor, logits_fn: Callable,
                   chunk: int = CHUNK) -> torch.Tensor:
    """Per-position NLL without gradients (validation): one value per target."""
    with torch.no_grad():
        return torch.cat([F.cross_entropy(logits_fn(hidden[s : s + chunk]).float(), targets[s : s + chunk],
                                          reduction="none") for s in range(0, hidden.shape[0], chunk)]
                         or [hidden.new_zeros(0, dtype=torch.float32)])


# --- reward model --------------------------------------------------------------------------------


def pair_indices(sizes: list[int]) -> tuple[list[int], list[int], list[int]]:
    """For elements of ``sizes`` responses each (rewards laid out element after element, best
    first): the (winner, loser) position of every K-choose-2 pair and the element it belongs to."""
    winners, losers, owner = [], [], []
    start = 0
    for element, k in enumerate(sizes):
        for i in range(k):
            for j in range(i + 1, k):
                winners.append(start + i)
                losers.append(start + j)
                owner.append(element)
        start += k
    return winners, losers, owner


def ranking_loss(rewards: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-element loss, per-pair margin r_w - r_l): each element's mean of ``-log sigmoid(r_w - r_l)``
    over its K-choose-2 pairs."""
    winners, losers, owner = (torch.tensor(x, dtype=torch.long, device=rewards.device) for x in pair_indices(sizes))
    margin = rewards[winners] - rewards[losers]
    per_pair = -F.logsigmoid(margin)
    totals = torch.zeros(len(sizes), dtype=rewards.dtype, device=rewards.device).index_add_(0, owner, per_pair)
    counts = torch.tensor([k * (k - 1) / 2 for k in sizes], dtype=rewards.dtype, device=rewards.device)
    return totals / counts, margin


def centring(rewards: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Per element: the square of the mean reward of its responses (pulls rewards towards 0)."""
    owner = torch.repeat_interleave(torch.arange(len(sizes), device=rewards.device),
                                    torch.tensor(sizes, device=rewards.device))
    sums = torch.zeros(len(sizes), dtype=rewards.dtype, device=rewards.device).index_add_(0, owner, rewards)
    return (sums / torch.tensor(sizes, dtype=rewards.dtype, device=rewards.device)) ** 2


def length_feature(characters: int) -> float:
    """What the length expert sees of a response: log(1 + its length in characters)."""
    return math.log1p(characters)


def fit_length_expert(lengths: list[list[int]]) -> float:
    """The coefficient ``a`` of P(w preferred to l) = sigmoid(a * (f(w) - f(l))), ``f`` =
    ``length_feature``, over every K-choose-2 pair of comparisons whose response lengths are listed
    best first: L2-regularised maximum likelihood (scikit-learn's logistic regression, C = 1, no
    intercept; each pair enters in both orders, so the fit has no side to favour).

    Trained through ``r + a * f`` (a product of experts: Clark et al. 2019; Shen et al. 2023 for
    reward models), the reward model gains nothing from the part of the labels that length alone
    explains, and the saved reward is ``r`` alone. 0 when no pair differs in length."""
    from sklearn.linear_model import LogisticRegression

    features = [length_feature(n) for sizes in lengths for n in sizes]
    winners, losers, _ = pair_indices([len(sizes) for sizes in lengths])
    diffs = np.array([features[w] - features[lose] for w, lose in zip(winners, losers)])
    if not diffs.any():
        return 0.0
    x = np.concatenate([diffs, -diffs])[:, None]
    y = np.concatenate([np.ones(len(diffs)), np.zeros(len(diffs))])
    return float(LogisticRegression(C=1.0, fit_intercept=False).fit(x, y).coef_[0, 0])
