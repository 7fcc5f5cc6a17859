"""The decoding loop behind ``HFModel.generate``.

Prompts are left-padded and prefilled together; a request's ``n`` samples then share that
prefill (its cache rows are repeated, not recomputed). Each step appends one token per live row;
a row that hits a stop sequence, end-of-sequence or its token limit is dropped from the batch and
its cache, so finished rows cost nothing. Sampling draws from a per-request generator seeded from
the request, so a sample does not depend on which other requests shared its batch.
"""

from __future__ import annotations

import hashlib

import torch

from evalsuite.requests import Generate


def _generator(request: Generate, sample: int, device: torch.device) -> torch.Generator:
    digest = hashlib.sha256(f"{request.seed}|{sample}|{request.context}".encode()).digest()
    gen = torch.Generator(device=device)
    gen.manual_seed(int.from_bytes(digest[:8], "little"))
    return gen


def _choose(logits: torch.Tensor, request: Generate, gen: torch.Generator | None) -> int:
    if request.temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / request.temperature, dim=-1)
    if request.top_p < 1.0:  # nucleus: keep the smallest set of tokens whose mass reaches top_p
        sorted_probs, idx = probs.sort(descending=True)
        keep = sorted_probs.cumsum(0) - sorted_probs < request.top_p
        probs = torch.zeros_like(probs).scatter(0, idx[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@torch.no_grad()
def decode_batch(model, requests: list[Generate], prompts: list[list[int]]) -> list[list[str]]:
    device = model.device
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding: every prompt ends at the same column
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    hidden, cache = model._forward(ids, mask, positions, None, True)
    last_logits = model.logprobs(hidden[:, -1])
    # One decoding row per sample; rows of one request share its prefill.
    owner = [i for i, r in enumerate(requests) for _ in range(r.n)]
    sample_no = [j for r in requests for j in range(r.n)]
    rows = torch.tensor(owner, device=device)
    cache.batch_select_indices(rows)
    logits = last_logits.index_select(0, rows)
    mask = mask.index_select(0, rows)
    next_pos = positions[:, -1].index_select(0, rows) + 1
    gens = [_generator(requests[o], s, device) if requests[o].temperature > 0 else None for o, s in zip(owner, sample_no)]
    tokens: list[list[int]] = [[] for _ in owner]
    texts = [""] * len(owner)
    live = list(range(len(owner)))
    eos = set(_eos_ids(model))
    step = 0
    while live:
        chosen = []
        still = []
        for k, row in enumerate(live):
            request = requests[owner[row]]
            token = _choose(logits[k], request, gens[row])
            done = token in eos
            if not done:
                tokens[row].append(token)
                texts[row], done = _cut_at_stop(model.tokenizer.decode(tokens[row], skip_special_tokens=True), request.stop)
            if not done and len(tokens[row]) < request.max_tokens:
                still.append(k)
                chosen.append(token)
        step += 1
        if not still:
            break
        if len(still) < len(live):  # drop finished rows from the batch and the cache
            keep = torch.tensor(still, device=device)
            cache.batch_select_indices(keep)
            mask, next_pos = mask.index_select(0, keep), next_pos.index_select(0, keep)
            live = [live[k] for k in still]
        mask = torch.cat([mask, torch.ones(len(live), 1, dtype=mask.dtype, device=device)], 1)
        step_ids = torch.tensor(chosen, device=device)[:, None]
        hidden, cache = model._forward(step_ids, mask, next_pos[:, None], cache, True)
        logits = model.logprobs(hidden[:, -1])
        next_pos = next_pos + 1
    out: list[list[str]] = [[] for _ in requests]
    for row, o in enumerate(owner):
        out[o].append(texts[row])
    return out


def _eos_ids(model) -> list[int]:
    ids = model.model.generation_config.eos_token_id if model.model.generation_config else None
    ids = ids if isinstance(ids, list) else [ids]
    if model.tokenizer.eos_token_id is not None:
        ids.append(model.tokenizer.eos_token_id)
    return [i for i in ids if i is not None]
