"""The decoding loop behind ``HFModel.generate``.

Prompts are prefilled together, each shared prefix once (the same three passes as likelihood
scoring, see ``shared_prefix``); a request's ``n`` samples then share that prefill (its cache rows
are repeated, not recomputed). Each step appends one token per live row;
a row that hits a stop sequence, end-of-sequence or its token limit is dropped from the batch and
its cache, so finished rows cost nothing. Sampling draws from a per-request generator seeded from
the request, so a sample does not depend on which other requests shared its batch.
"""

from __future__ import annotations

import hashlib

import torch

from evalsuite.models.hf import _select_rows
from evalsuite.models.shared_prefix import TokenRequest, plan_batches
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


def _prefill(model, prompts: list[list[int]]):
    """Run every prompt once, sharing common prefixes (a passage asked several questions is read
    once), and return the key/value cache, attention mask, next position and last-token
    log-probabilities of each prompt row, in input order."""
    requests = [TokenRequest(tuple(p), 1) for p in prompts]
    (batch,) = plan_batches(requests, batch_size=len(requests), split_on_prefix=False)
    device = model.device
    fams = batch.families
    for fam in fams:  # leave each prompt at least its last token for pass C, where its logits come from
        fam.b_end = min([fam.b_end] + [len(requests[m].seq) - 1 for m in fam.members])
    a_end = max(0, min([batch.a_end] + [f.b_end - 1 for f in fams]))
    past = None
    if a_end > 0:
        _, cache_a = model._prefix_pass(requests[fams[0].members[0]].seq[:a_end])
        past = _select_rows(cache_a, torch.zeros(len(fams), dtype=torch.long, device=device))
    ids, mask_b = model._pad([requests[f.members[0]].seq[a_end : f.b_end] for f in fams])
    mask_b = torch.cat([torch.ones(len(fams), a_end, dtype=mask_b.dtype, device=device), mask_b], 1)
    pos = a_end + torch.arange(ids.shape[1], device=device).expand(len(fams), -1)
    _, cache_b = model._forward(ids, mask_b, pos, past, True)
    members = [(row, f.b_end, m) for row, f in enumerate(fams) for m in f.members]
    fam_rows = torch.tensor([row for row, _, _ in members], device=device)
    ids, mask_c = model._pad([requests[m].seq[b_end:] for _, b_end, m in members])
    mask = torch.cat([mask_b.index_select(0, fam_rows), mask_c], 1)
    offsets = torch.tensor([b_end for _, b_end, _ in members], device=device)
    pos = offsets[:, None] + torch.arange(ids.shape[1], device=device)[None, :]
    hidden, cache = model._forward(ids, mask, pos, _select_rows(cache_b, fam_rows), True)
    last = torch.tensor([len(requests[m].seq) - b_end - 1 for _, b_end, m in members], device=device)
    logits = model.logprobs(hidden[torch.arange(len(members), device=device), last])
    # Back to input order: row r of the outputs belongs to prompt members[r][2].
    order = torch.empty(len(members), dtype=torch.long, device=device)
    order[torch.tensor([m for _, _, m in members], device=device)] = torch.arange(len(members), device=device)
    cache.batch_select_indices(order)
    next_pos = torch.tensor([len(p) for p in prompts], device=device)
    return cache, mask.index_select(0, order), next_pos, logits.index_select(0, order)


@torch.no_grad()
def decode_batch(model, requests: list[Generate], prompts: list[list[int]]) -> list[list[str]]:
    device = model.device
    cache, mask, next_pos, last_logits = _prefill(model, prompts)
    # One decoding row per sample; rows of one request share its prefill.
    owner = [i for i, r in enumerate(requests) for _ in range(r.n)]
    sample_no = [j for r in requests for j in range(r.n)]
    rows = torch.tensor(owner, device=device)
    cache.batch_select_indices(rows)
    logits = last_logits.index_select(0, rows)
    mask = mask.index_select(0, rows)
    next_pos = next_pos.index_select(0, rows)
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
