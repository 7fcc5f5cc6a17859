"""Hugging Face causal language models: the request kinds, batched, with shared prefixes run once.

A request enters as text (``Loglikelihood``, ``LoglikelihoodRolling``), becomes token sequences
(the same tokenisation rules as lm-evaluation-harness, so numbers are comparable), and is scored by
``_score_tokens``. ``shared_prefix`` plans the work: short sequences as prefix trees packed into
rows under a tree-attention mask (``_run_packed``), long ones and groups around a long shared prefix
as prefix trees run level by level on a key/value cache (``_run_tree``). Generation lives in
``generation.py``.
"""

from __future__ import annotations

import inspect

import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.models.chat import chat_text, use_chat_template
from evalsuite.models.cpu_weights import prepare_cpu_weights
from evalsuite.models.kv_cache import select_rows, slice_positions
from evalsuite.models.loading import (
    fingerprint,
    halving_batches,
    lineage,
    load_tokenizer,
    load_weights,
    model_positions,
    resolve_device,
    resolve_dtype,
    resolve_model_path,
)
from evalsuite.models.shared_prefix import (
    PackedRow,
    TokenRequest,
    TreeBatch,
    common_prefix_len,
    length_chunks,
    plan_batches,
    plan_packed,
    plan_tree_batches,
)
from evalsuite.requests import Generate, Loglikelihood, LoglikelihoodResult, LoglikelihoodRolling, RollingResult


def rolling_windows(tokens: list[int], prefix_token: int, max_len: int) -> list[TokenRequest]:
    """Disjoint windows that together score every token once, each with as much left context as fits.

    The first window is conditioned on ``prefix_token`` (BOS, else EOS); later ones on the tokens
    before them. This is lm-evaluation-harness's rolling scheme with a one-token minimum context.
    """
    windows = []
    start = 0
    while start < len(tokens):
        end = min(start + max_len, len(tokens))
        if start == 0:
            seq = [prefix_token] + tokens[:end]
        else:
            seq = tokens[max(0, end - max_len - 1) : end]
        windows.append(TokenRequest(tuple(seq), len(seq) - (end - start)))
        start = end
    return windows


def check_max_length(max_length: int | None, positions: int | None, spec: str) -> int:
    """The window: ``--max-length`` when given (refused beyond the model's positions), else the model's."""
    if max_length is None:
        return positions or 2048
    if positions and max_length > positions:
        raise EvalsuiteError(
            f"--max-length {max_length} is longer than model '{spec}' can read ({positions} positions).",
            f"use --max-length {positions} or less (or leave it out)",
        )
    return max_length


# On a GPU, ``auto`` starts here and halves on out-of-memory until a batch fits; a CPU has no
# out-of-memory signal to probe with (the system kills the process instead), so it uses 16.
AUTO_BATCH = {"cuda": 64, "cpu": 16}


def batch_size_for(batch_size: int | str, device: torch.device) -> int:
    if batch_size == "auto":
        return AUTO_BATCH.get(device.type, 16)
    return int(batch_size)


class HFModel:
    """A causal LM from transformers, loaded safely (safetensors only, no remote code unless asked)."""

    def __init__(
        self,
        model: str = "default",
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int | str = 16,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        chat_template: str = "auto",
    ):
        self.spec = model
        self.path = resolve_model_path(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(self.path, trust_remote_code)
        self.max_length = check_max_length(max_length, model_positions(self.path, trust_remote_code), model)
        self.batch_size = batch_size_for(batch_size, self.device)
        self.model = load_weights(self.path, "causal", self.dtype, trust_remote_code, spec=model)
        self.model.to(self.device).eval()
        if self.device.type == "cpu":
            prepare_cpu_weights(self.model)
        self._attach()
        self.fingerprint = fingerprint(self.path)
        self.use_chat_template = use_chat_template(self.tokenizer, chat_template, model)

    def _attach(self) -> None:
        """The engine's view of ``self.model`` (its backbone, head and cache convention)."""
        self.base = self.model.base_model
        self.head = self.model.get_output_embeddings()
        # transformers 5 renamed the cache argument (``past_key_values`` -> ``cache``); take either.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.base.forward).parameters else "past_key_values"
        self.prefix_token = (
            self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        )
        self._a_memo: tuple[tuple[int, ...], torch.Tensor, object] | None = None
        self.truncated_prompts = 0
        # Packing short sequences needs a custom 4-D attention mask, which these implementations take.
        self.pack_short = self.model.config._attn_implementation in ("sdpa", "eager")

    @classmethod
    def around(cls, model, tokenizer, batch_size: int, max_length: int, use_template: bool, spec: str = "policy"):
        """The engine over a model already in memory (a policy being trained): nothing is loaded,
        and the weights are read as they are at each call. Call ``forget_prefix`` after they change."""
        self = cls.__new__(cls)
        self.spec, self.path, self.fingerprint = spec, None, None
        self.model, self.tokenizer = model, tokenizer
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.batch_size, self.max_length, self.use_chat_template = batch_size, max_length, use_template
        self._attach()
        return self

    # ---- identity -------------------------------------------------------------------------------

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "path": self.path,
            "fingerprint": self.fingerprint,
            "class": type(self.model).__name__,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
            "max_length": self.max_length,
            "chat_template": self.use_chat_template,
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
            "lineage": lineage(self.path, self.fingerprint),
        }

    @property
    def cache_namespace(self) -> str:
        """Responses depend on the weights, the numeric type and the window length."""
        return f"{self.fingerprint}|{self.dtype}|{self.max_length}|chat={self.use_chat_template}"

    # ---- request kinds --------------------------------------------------------------------------

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        """Tokens of ``text``; with ``special_tokens`` the tokenizer adds what it adds by itself
        (BOS for Llama-style tokenizers), as lm-evaluation-harness encodes contexts."""
        return self.tokenizer(text, add_special_tokens=special_tokens).input_ids

    def _after_prefix(self, text: str) -> list[int]:
        """Tokens of ``text`` scored after exactly one prefix token (BOS, else EOS), whatever the
        tokenizer adds itself: a text that already starts with it does not get a second one."""
        tokens = self.encode(text, special_tokens=False)
        return tokens if tokens and tokens[0] == self.prefix_token else [self.prefix_token] + tokens

    def encode_pair(self, context: str, continuation: str) -> TokenRequest:
        """Tokenise context+continuation together, so the boundary tokenises as it would in running text."""
        if not context:  # conditioned on exactly one BOS, as lm-evaluation-harness does
            seq = self._after_prefix(continuation)
            ctx, cont = seq[:1], seq[1:]
        else:
            spaces = len(context) - len(context.rstrip())
            if spaces:  # a trailing space belongs to the continuation's first token
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            whole = self.encode(context + continuation)
            ctx = self.encode(context)
            cont = whole[len(ctx) :]
        seq = ctx + cont
        if len(cont) == 0:
            raise EvalsuiteError(f"Empty continuation for context {context[-40:]!r}.", "check the task's choices")
        overflow = len(seq) - (self.max_length + 1)
        if overflow > 0:  # keep the continuation whole, drop the oldest context
            if overflow >= len(ctx):
                raise EvalsuiteError(
                    f"A continuation of {len(cont)} tokens exceeds the model's {self.max_length}-token window.",
                    "raise --max-length or shorten the task's continuations",
                )
            seq, ctx = seq[overflow:], ctx[overflow:]
        return TokenRequest(tuple(seq), len(ctx))

    def loglikelihood(self, requests: list[Loglikelihood]) -> list[LoglikelihoodResult]:
        token_requests = [self.encode_pair(r.context, r.continuation) for r in requests]
        scored = self._score_tokens(token_requests)
        return [
            LoglikelihoodResult(lp, greedy, len(t.seq) - t.ctx_len) for (lp, greedy), t in zip(scored, token_requests)
        ]

    def loglikelihood_rolling(self, requests: list[LoglikelihoodRolling]) -> list[RollingResult]:
        windows, owner = [], []
        for i, request in enumerate(requests):
            seq = self._after_prefix(request.text)
            for window in rolling_windows(seq[1:], seq[0], self.max_length):
                windows.append(window)
                owner.append(i)
        scored = self._score_tokens(windows)
        totals = [0.0] * len(requests)
        counts = [0] * len(requests)
        for i, (lp, _), window in zip(owner, scored, windows):
            totals[i] += lp
            counts[i] += len(window.seq) - window.ctx_len
        return [RollingResult(t, n) for t, n in zip(totals, counts)]

    def generate(self, requests: list[Generate]) -> list[list[str]]:
        """``n`` completions per request. Prompts are prefilled once (their ``n`` samples share the
        prefill); finished rows leave the batch and waiting prompts take their place."""
        from evalsuite.models.generation import decode_stream

        prompts = [self._prompt_tokens(r) for r in requests]
        results: list[list[str]] = [[] for _ in requests]

        def work(pending: list[int]):
            for i, texts in decode_stream(self, requests, prompts, self._generation_order(pending, prompts)):
                results[i] = texts
                yield i

        halving_batches(self, list(range(len(requests))), work)
        return results

    def sample_tokens(self, requests: list[Generate], prompts: list[list[int]]) -> list[list[tuple]]:
        """Like ``generate`` for prompts given as token ids: per request, its ``n`` samples as
        ``(text, token ids, ended)`` (ids include the end-of-sequence token when ``ended``)."""
        from evalsuite.models.generation import decode_stream

        results: list[list[tuple]] = [[] for _ in requests]

        def work(pending: list[int]):
            for i, texts, ids in decode_stream(self, requests, prompts, self._generation_order(pending, prompts),
                                               with_tokens=True):
                results[i] = [(text, tokens, ended) for text, (tokens, ended) in zip(texts, ids)]
                yield i

        halving_batches(self, list(range(len(requests))), work)
        return results

    def _generation_order(self, indices: list[int], prompts: list[list[int]]) -> list[int]:
        """Prompts that share a start (questions about one passage) next to each other, so that they
        join the batch together and their prefill reads the passage once; longest first."""
        plan = plan_batches([TokenRequest(tuple(prompts[i]), 1) for i in indices], self.batch_size,
                            split_on_prefix=False)
        return [indices[m] for batch in plan for fam in batch.families for m in fam.members]

    def _prompt_tokens(self, request: Generate) -> list[int]:
        text = request.context
        if request.chat and self.use_chat_template:
            text = chat_text(self.tokenizer, [{"role": "user", "content": text}])
            tokens = self.tokenizer(text, add_special_tokens=False).input_ids
        else:
            tokens = self.encode(text)
        room = self.max_length - request.max_tokens
        if len(tokens) > room:  # keep the end of the prompt: the question usually comes last
            self.truncated_prompts += 1
            tokens = tokens[-max(1, room) :]
        return tokens

    # ---- the engine -----------------------------------------------------------------------------

    def _score_tokens(self, requests: list[TokenRequest]) -> list[tuple[float, bool]]:
        """Summed log-probability and greedy flag of every request, halving the batch on out-of-memory.

        Short sequences run as prefix trees packed into rows (``_run_packed``); long ones, and groups
        around a long shared prefix, run level by level with a key/value cache (``_run_tree``).
        """
        results = [[0.0, True] for _ in requests]

        def work(pending: list[int]):
            sub = [requests[i] for i in pending]
            for run, batch in self._plan(sub):
                for m, value in run(batch, sub).items():
                    results[pending[m]] = value
                    yield pending[m]

        halving_batches(self, list(range(len(requests))), work, on_halve=self.forget_prefix)
        return [(float(lp), bool(g)) for lp, g in results]

    def forget_prefix(self) -> None:
        """Drop the remembered shared prefix (after out-of-memory, or between unrelated workloads)."""
        self._a_memo = None

    def _plan(self, reqs: list[TokenRequest]):
        """(runner, batch) pairs covering every request once; tree batches index ``reqs`` directly."""
        rest = list(range(len(reqs)))
        if self.pack_short:
            passes, rest = plan_packed(reqs, self.batch_size)
            yield from ((self._run_packed, rows) for rows in passes)
        if rest:
            for batch in plan_tree_batches([reqs[i] for i in rest], self.batch_size):
                _renumber(batch, rest)
                yield self._run_tree, batch

    @torch.no_grad()
    def _run_tree(self, batch: TreeBatch, reqs: list[TokenRequest]) -> dict[int, list]:
        """Run a batch's prefix tree level by level; every request gathers log-probs along its path.

        At each level the nodes with children run in one pass (the next level selects its parents'
        rows from that cache); leaves need no cache, so they run in chunks of similar length.
        """
        acc = _Accumulator(self)
        cache = mask = None
        for depth, nodes in enumerate(batch.levels):
            parents_here = {n.parent for n in batch.levels[depth + 1]} if depth + 1 < len(batch.levels) else set()
            inner = [i for i in range(len(nodes)) if i in parents_here]
            leaves = [i for i in range(len(nodes)) if i not in parents_here]
            if depth == 0 and len(nodes) == 1 and inner:  # one shared root (a primer): remembered across batches
                (root,) = nodes
                hidden, next_cache = self.prefix_pass(reqs[root.members[0]].seq[: root.end])
                next_mask = torch.ones(1, root.end, dtype=torch.long, device=self.device)
                self._gather(acc, [root], hidden, reqs)
            else:
                next_cache = next_mask = None
                if inner:
                    hidden, next_cache, next_mask = self._run_nodes([nodes[i] for i in inner], cache, mask, True)
                    self._gather(acc, [nodes[i] for i in inner], hidden, reqs)
                lengths = [nodes[i].end - nodes[i].start for i in leaves]
                for chunk in length_chunks(lengths, self.batch_size):
                    group = [nodes[leaves[k]] for k in chunk]
                    hidden, _, _ = self._run_nodes(group, cache, mask, False)
                    self._gather(acc, group, hidden, reqs)
            if depth + 1 < len(batch.levels):  # the next level's parents are rows of this level's inner pass
                row_of = {old: new for new, old in enumerate(inner)}
                for node in batch.levels[depth + 1]:
                    node.parent = row_of[node.parent]
            cache, mask = next_cache, next_mask
        return acc.totals

    @torch.no_grad()
    def _run_packed(self, rows: list[PackedRow], reqs: list[TokenRequest]) -> dict[int, list]:
        """One forward pass over rows of packed prefix trees (see ``shared_prefix.plan_packed``)."""
        width = max(row.size for row in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        pos = torch.zeros(len(rows), width, dtype=torch.long)
        allowed = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)  # padding sees itself only
        offsets = []
        for r, row in enumerate(rows):
            lengths = [n.end - n.start for n in row.nodes]
            starts = torch.tensor([0] + lengths).cumsum(0)
            offsets.append(starts.tolist())
            ids[r, : row.size] = torch.tensor([t for n in row.nodes for t in n.tokens])
            pos[r, : row.size] = torch.cat([torch.arange(n.start, n.end) for n in row.nodes])
            # sees[i, j]: node j is node i or one of its ancestors (parents come first in a row)
            sees = torch.eye(len(row.nodes), dtype=torch.bool)
            for i, node in enumerate(row.nodes):
                if node.parent >= 0:
                    sees[i] |= sees[node.parent]
            node_of = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
            allowed[r, : row.size, : row.size] = sees[node_of][:, node_of].tril()
        mask = torch.zeros(allowed.shape, dtype=self.dtype).masked_fill_(~allowed, torch.finfo(self.dtype).min)
        hidden, _ = self.forward(ids.to(self.device), mask[:, None].to(self.device), pos.to(self.device), None, False)
        acc = _Accumulator(self)
        for r, row in enumerate(rows):
            for node, offset in zip(row.nodes, offsets[r]):
                acc.add(node, hidden[r, offset:], reqs)
        acc.flush()
        return acc.totals

    def _run_nodes(self, nodes: list, cache, mask, keep_cache: bool):
        """One forward pass over tree nodes, each on top of its parent's row of ``cache``."""
        ids, row_mask = self.pad([node.tokens for node in nodes])
        past = None
        if cache is not None:
            parents = torch.tensor([n.parent for n in nodes], device=self.device)
            past = select_rows(cache, parents)
            row_mask = torch.cat([mask.index_select(0, parents), row_mask], 1)
        starts = torch.tensor([n.start for n in nodes], device=self.device)
        pos = starts[:, None] + torch.arange(ids.shape[1], device=self.device)[None, :]
        hidden, new_cache = self.forward(ids, row_mask, pos, past, keep_cache)
        return hidden, new_cache, row_mask

    @staticmethod
    def _gather(acc: _Accumulator, nodes: list, hidden: torch.Tensor, reqs: list[TokenRequest]) -> None:
        for row, node in enumerate(nodes):
            acc.add(node, hidden[row], reqs)
        acc.flush()

    def prefix_pass(self, tokens: tuple[int, ...]):
        """Pass A, remembered across batches: only tokens beyond the remembered prefix are computed.

        Consecutive batches share most of their prefix (a few-shot primer) but may differ in its
        last tokens, so the remembered cache is cut back to the common part and extended.
        """
        keep = 0
        if self._a_memo is not None:
            keep = common_prefix_len(self._a_memo[0], tokens)
        if keep == len(tokens) and self._a_memo is not None and len(self._a_memo[0]) == keep:
            return self._a_memo[1], self._a_memo[2]
        if keep > 0:
            _, hidden_memo, cache_memo = self._a_memo
            past = slice_positions(cache_memo, keep)
            hidden_kept = hidden_memo[:, :keep]
        else:
            past, hidden_kept = None, None
        if keep < len(tokens):
            ids = torch.tensor([tokens[keep:]], device=self.device)
            positions = torch.arange(keep, len(tokens), device=self.device)[None, :]
            mask = torch.ones(1, len(tokens), dtype=torch.long, device=self.device)
            hidden_new, cache = self.forward(ids, mask, positions, past, True)
            hidden = hidden_new if hidden_kept is None else torch.cat([hidden_kept, hidden_new], 1)
        else:
            hidden, cache = hidden_kept, past
        self._a_memo = (tokens, hidden, cache)
        return hidden, cache

    def pad(self, rows: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token rows; the mask marks real tokens."""
        width = max(1, max(len(r) for r in rows))
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device)

    def forward(self, ids, mask, positions, past, use_cache):
        """The base model (no vocabulary projection) on ``ids`` after the cache ``past``:
        (last hidden states, the extended cache when ``use_cache``)."""
        cache = {self._cache_arg: past} if past is not None else {}
        out = self.base(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=use_cache, **cache)
        if not use_cache:
            return out.last_hidden_state, None
        new = out.get("cache")
        return out.last_hidden_state, new if new is not None else out.get("past_key_values")

    def logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-softmax over the vocabulary for the given final hidden states (only where needed)."""
        return torch.log_softmax(self.logits(hidden), dim=-1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return model_logits(self.head, self.model.config, hidden)


def model_logits(head, config, hidden: torch.Tensor) -> torch.Tensor:
    """Float32 logits as the model defines them (its logit scale and soft-capping applied), from
    final hidden states through the output head; the trainer's token loss uses it too."""
    logits = head(hidden).float()
    if getattr(config, "logit_scale", None):
        logits = logits * config.logit_scale
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


FLUSH_POSITIONS = 256  # positions scored against the vocabulary at once (50 MB of logits for 49k words)


def _renumber(batch: TreeBatch, indices: list[int]) -> None:
    """Point a tree batch planned over a subset of requests back at the full list."""
    for level in batch.levels:
        for node in level:
            node.members = [indices[m] for m in node.members]


class _Accumulator:
    """Collects the hidden states at positions whose next token is a target, then scores them at once.

    A position inside a shared node is projected onto the vocabulary once, however many requests
    pass through it; each request then reads its own target's log-probability from that row.
    """

    def __init__(self, model: HFModel):
        self.model = model
        self.totals: dict[int, list] = {}
        self._hidden: list[torch.Tensor] = []
        self._rows = 0
        self._row: list[int] = []  # per (request, position): its row in the concatenated hidden states
        self._owner: list[int] = []
        self._target: list[int] = []

    def add(self, node, node_hidden: torch.Tensor, reqs: list[TokenRequest]) -> None:
        """``node_hidden[q - node.start]`` is the state at position q, for q in [node.start, node.end)."""
        spans = []
        for m in node.members:
            self.totals.setdefault(m, [0.0, True])
            first, last = max(node.start, reqs[m].ctx_len - 1), min(node.end, reqs[m].feed_end)
            if first < last:
                spans.append((m, first, last))
        if not spans:
            return
        lo, hi = min(s[1] for s in spans), max(s[2] for s in spans)
        self._hidden.append(node_hidden[lo - node.start : hi - node.start])
        for m, first, last in spans:
            self._row.extend(range(self._rows + first - lo, self._rows + last - lo))
            self._owner.extend([m] * (last - first))
            self._target.extend(reqs[m].seq[first + 1 : last + 1])
        self._rows += hi - lo

    def flush(self):
        if not self._hidden:
            return
        hidden = torch.cat(self._hidden)
        row = torch.tensor(self._row, device=hidden.device)
        target = torch.tensor(self._target, device=hidden.device)
        picked = torch.empty(len(row), device=hidden.device)
        greedy = torch.empty(len(row), dtype=torch.bool, device=hidden.device)
        for lo in range(0, len(hidden), FLUSH_POSITIONS):  # bounded memory: positions x vocabulary floats
            logprobs = self.model.logprobs(hidden[lo : lo + FLUSH_POSITIONS])
            here = ((row >= lo) & (row < lo + FLUSH_POSITIONS)).nonzero()[:, 0]
            local, want = row[here] - lo, target[here]
            picked[here] = logprobs[local, want]
            greedy[here] = picked[here] >= logprobs.amax(-1)[local]  # amax: far cheaper than argmax on a CPU
        for member, lp, g in zip(self._owner, picked.tolist(), greedy.tolist()):
            total = self.totals[member]
            total[0] += lp
            total[1] = total[1] and g
        self._hidden, self._rows, self._row, self._owner, self._target = [], 0, [], [], []
