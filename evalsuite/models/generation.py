"""The decoding loop behind ``HFModel.generate``.

Prompts are prefilled together, each shared prefix once (three passes, see ``shared_prefix``); a
request's ``n`` samples then share that prefill (its cache rows are repeated, not recomputed). Each
step appends one token per live row; a row that hits a stop sequence, end-of-sequence or its token
limit leaves the batch and its cache, and waiting prompts are prefilled and join the running batch
in its place (continuous batching): on a CPU a decoding step costs about the same for 2 rows as for
16, so the batch is kept full. Sampling draws from a per-request generator seeded from the request,
so a sample does not depend on which other requests shared its batch.
"""

from __future__ import annotations

import hashlib

import torch

from evalsuite.models.kv_cache import drop_leading_positions, left_pad_mask, select_rows, stack_caches
from evalsuite.models.shared_prefix import TokenRequest, plan_batches
from evalsuite.requests import Generate

NUCLEUS_CANDIDATES = 512
# Prompt tokens prefilled in one forward pass at most. Long prompts (DROP's passages run to ~1,100
# tokens) joining 16 at a time would hold 16 passages' attention scores at once; in groups of this
# many tokens the peak memory is a few passages' worth, and the passes stay large enough to be fast.
PREFILL_TOKENS = 4096
# A prefill pass pads its prompts to the longest. Prompts arrive longest first (see
# ``HFModel._generation_order``), so a group is cut where the next prompt would make padding more
# than this share of the pass: prompts of 250 and 50 tokens are not prefilled as two of 250.
PREFILL_PADDING = 0.2


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
        # The nucleus almost always lies among the likeliest few hundred tokens: find them with topk
        # (far cheaper than sorting the whole vocabulary at every step), and sort all only if not.
        sorted_probs, idx = probs.topk(min(NUCLEUS_CANDIDATES, probs.numel()))
        if sorted_probs.sum() < request.top_p:
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
        _, cache_a = model.prefix_pass(requests[fams[0].members[0]].seq[:a_end])
        past = select_rows(cache_a, torch.zeros(len(fams), dtype=torch.long, device=device))
    ids, mask_b = model.pad([requests[f.members[0]].seq[a_end : f.b_end] for f in fams])
    mask_b = torch.cat([torch.ones(len(fams), a_end, dtype=mask_b.dtype, device=device), mask_b], 1)
    pos = a_end + torch.arange(ids.shape[1], device=device).expand(len(fams), -1)
    _, cache_b = model.forward(ids, mask_b, pos, past, True)
    members = [(row, f.b_end, m) for row, f in enumerate(fams) for m in f.members]
    fam_rows = torch.tensor([row for row, _, _ in members], device=device)
    ids, mask_c = model.pad([requests[m].seq[b_end:] for _, b_end, m in members])
    mask = torch.cat([mask_b.index_select(0, fam_rows), mask_c], 1)
    offsets = torch.tensor([b_end for _, b_end, _ in members], device=device)
    pos = offsets[:, None] + torch.arange(ids.shape[1], device=device)[None, :]
    # Without shared passages every family is one prompt, in order: pass C continues cache B as is.
    same = len(members) == len(fams)
    hidden, cache = model.forward(ids, mask, pos, cache_b if same else select_rows(cache_b, fam_rows), True)
    last = torch.tensor([len(requests[m].seq) - b_end - 1 for _, b_end, m in members], device=device)
    logits = model.logprobs(hidden[torch.arange(len(members), device=device), last])
    # Back to input order: row r of the outputs belongs to prompt members[r][2].
    order = torch.empty(len(members), dtype=torch.long, device=device)
    order[torch.tensor([m for _, _, m in members], device=device)] = torch.arange(len(members), device=device)
    cache.batch_select_indices(order)
    next_pos = torch.tensor([len(p) for p in prompts], device=device)
    return cache, mask.index_select(0, order), next_pos, logits.index_select(0, order)


def prefill_groups(lengths: list[int]) -> list[list[int]]:
    """Positions of ``lengths`` (prompt lengths, in joining order) cut into consecutive prefill
    groups: each holds at most ``PREFILL_TOKENS`` tokens, and a group ends where the next prompt
    would make its padded area (rows x the longest) more than ``PREFILL_PADDING`` padding."""
    groups: list[list[int]] = []
    tokens = longest = 0
    for k, n in enumerate(lengths):
        area = (len(groups[-1]) + 1) * max(longest, n) if groups else 0
        if not groups or tokens + n > PREFILL_TOKENS or area * (1 - PREFILL_PADDING) > tokens + n:
            groups.append([])
            tokens = longest = 0
        groups[-1].append(k)
        tokens, longest = tokens + n, max(longest, n)
    return groups


class _Rows:
    """The live decoding rows: one per sample, each with its key/value cache row, mask and position."""

    def __init__(self, model, requests: list[Generate]):
        self.model, self.requests = model, requests
        self.cache = self.mask = self.next_pos = self.logits = None
        self.owner: list[int] = []  # request index of each row
        self.sample: list[int] = []
        self.tokens: list[list[int]] = []
        self.gens: list[torch.Generator | None] = []

    def __len__(self) -> int:
        return len(self.owner)

    def join(self, indices: list[int], prompts: list[list[int]]) -> None:
        """Prefill these requests' prompts in groups (``prefill_groups``) and add their rows."""
        for group in prefill_groups([len(prompts[i]) for i in indices]):
            self._join([indices[g] for g in group], prompts)

    def _join(self, indices: list[int], prompts: list[list[int]]) -> None:
        """Prefill these requests' prompts and add one row per sample; the rows of one request share
        its prefill. Caches of different lengths are aligned by left padding (masked out)."""
        cache, mask, next_pos, logits = _prefill(self.model, [prompts[i] for i in indices])
        device = self.model.device
        if any(self.requests[i].n > 1 for i in indices):  # one row per sample, sharing its prompt's cache
            rows = torch.tensor([k for k, i in enumerate(indices) for _ in range(self.requests[i].n)], device=device)
            cache.batch_select_indices(rows)
            mask, next_pos, logits = (t.index_select(0, rows) for t in (mask, next_pos, logits))
        if self.cache is not None:
            width = max(mask.shape[1], self.mask.shape[1])
            cache = stack_caches(self.cache, cache, width)
            mask = torch.cat([left_pad_mask(self.mask, width), left_pad_mask(mask, width)])
            next_pos, logits = torch.cat([self.next_pos, next_pos]), torch.cat([self.logits, logits])
        self.cache, self.mask, self.next_pos, self.logits = cache, mask, next_pos, logits
        for i in indices:
            request = self.requests[i]
            for j in range(request.n):
                self.owner.append(i)
                self.sample.append(j)
                self.tokens.append([])
                self.gens.append(_generator(request, j, device) if request.temperature > 0 else None)

    def keep(self, rows: list[int]) -> None:
        """Drop every other row from the batch and its cache: finished rows cost nothing more."""
        if len(rows) == len(self):
            return
        index = torch.tensor(rows, dtype=torch.long, device=self.model.device)
        self.cache.batch_select_indices(index)
        self.mask, self.next_pos = self.mask.index_select(0, index), self.next_pos.index_select(0, index)
        self.logits = self.logits.index_select(0, index)
        for name in ("owner", "sample", "tokens", "gens"):
            setattr(self, name, [getattr(self, name)[r] for r in rows])
        # Columns no remaining row attends to (the prompts of rows that left) are cut, so a batch that
        # keeps running for thousands of steps keeps a cache as wide as its longest live row.
        used = self.mask.any(0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            self.mask = self.mask[:, first:]
            drop_leading_positions(self.cache, first)

    def step(self, chosen: list[int]) -> None:
        """Feed each row its chosen token; the next logits come back."""
        device = self.model.device
        self.mask = torch.cat([self.mask, torch.ones(len(self), 1, dtype=self.mask.dtype, device=device)], 1)
        ids = torch.tensor(chosen, device=device)[:, None]
        hidden, self.cache = self.model.forward(ids, self.mask, self.next_pos[:, None], self.cache, True)
        self.logits = self.model.logprobs(hidden[:, -1])
        self.next_pos = self.next_pos + 1


@torch.no_grad()
def decode_stream(model, requests: list[Generate], prompts: list[list[int]], order: list[int],
                  with_tokens: bool = False):
    """Decode every request in ``order``, keeping up to ``model.batch_size`` rows busy: whenever a
    quarter of the rows (or a request's worth) has finished, the next prompts are prefilled and join
    the running batch, so a few long answers never leave the batch nearly empty.

    Yields ``(request index, its n texts)`` as each request finishes; ``with_tokens`` adds a third
    item, each sample's ``(token ids, ended)``: the ids sampled, the end-of-sequence token included
    when ``ended`` (what a policy-gradient trainer needs to score every action it took).
    """
    eos = set(_eos_ids(model))
    queue = list(order)
    rows = _Rows(model, requests)
    texts: dict[int, list[str]] = {i: [""] * requests[i].n for i in queue}
    ids: dict[int, list] = {i: [None] * requests[i].n for i in queue}
    left = {i: requests[i].n for i in queue}
    while queue or len(rows):
        free = model.batch_size - len(rows)
        if queue and (not len(rows) or free >= max(requests[queue[0]].n, model.batch_size // 4)):
            joining = []
            while queue:
                n = requests[queue[0]].n
                if n > free and (joining or len(rows)):  # a request with more samples than rows goes alone
                    break
                free -= n
                joining.append(queue.pop(0))
            rows.join(joining, prompts)
        chosen, still = [], []
        for k in range(len(rows)):
            request = requests[rows.owner[k]]
            token = _choose(rows.logits[k], request, rows.gens[k])
            ended = done = token in eos
            owner, sample = rows.owner[k], rows.sample[k]
            if not done:
                rows.tokens[k].append(token)
                if request.stop:  # without stop sequences the text is decoded once, at the end
                    text = model.tokenizer.decode(rows.tokens[k], skip_special_tokens=True)
                    text, done = _cut_at_stop(text, request.stop)
                    texts[owner][sample] = text
            if not done and len(rows.tokens[k]) < request.max_tokens:
                still.append(k)
                chosen.append(token)
            else:
                if not request.stop:
                    texts[owner][sample] = model.tokenizer.decode(rows.tokens[k], skip_special_tokens=True)
                ids[owner][sample] = (rows.tokens[k] + ([token] if ended else []), ended)
                left[owner] -= 1
                if left[owner] == 0:
                    yield (owner, texts.pop(owner), ids.pop(owner)) if with_tokens else (owner, texts.pop(owner))
        rows.keep(still)
        if still:
            rows.step(chosen)


def _eos_ids(model) -> list[int]:
    ids = model.model.generation_config.eos_token_id if model.model.generation_config else None
    ids = ids if isinstance(ids, list) else [ids]
    if model.tokenizer.eos_token_id is not None:
        ids.append(model.tokenizer.eos_token_id)
    return [i for i in ids if i is not None]
