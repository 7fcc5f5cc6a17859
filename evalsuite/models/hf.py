"""Hugging Face causal language models: the request kinds, batched, with shared prefixes run once.

A request enters as text (``Loglikelihood``, ``LoglikelihoodRolling``), becomes token sequences
(the same tokenisation rules as lm-evaluation-harness, so numbers are comparable), and is scored by
``_score_tokens``. ``shared_prefix`` plans the work: short sequences as prefix trees packed into
rows under a tree-attention mask (``_run_packed``), long ones and groups around a long shared prefix
as prefix trees run level by level on a key/value cache (``_run_tree``). Generation lives in
``generation.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm  # tqdm.write keeps messages clear of the runner's progress bar

from evalsuite.errors import EvalsuiteError
from evalsuite.models.cpu_weights import prepare_cpu_weights
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
from evalsuite.paths import home
from evalsuite.requests import Generate, Loglikelihood, LoglikelihoodResult, LoglikelihoodRolling, RollingResult

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalsuiteError("--device cuda was asked for but no CUDA device is visible.", "use --device cpu or auto")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise EvalsuiteError(f"Unknown dtype '{dtype}'.", f"use one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_model_path(spec: str) -> str:
    """Map ``default``, a ``.gguf`` file, a local folder or a Hub id to something ``from_pretrained`` loads."""
    from evalsuite.models.default import convert_gguf, default_model_dir

    if spec == "default":
        return str(default_model_dir())
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise EvalsuiteError(f"GGUF file {spec} does not exist.", "check the path given to --model")
        out = home() / "models" / f"gguf-{_file_digest(path)[:16]}"
        return str(out if (out / "config.json").is_file() else convert_gguf(path, out))
    if path.exists():
        if not (path / "config.json").is_file():
            raise EvalsuiteError(
                f"Model folder {spec} has no config.json.",
                "point --model at a Hugging Face model folder (config.json + *.safetensors)",
            )
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise EvalsuiteError(f"Model path {spec} does not exist.", "check the path given to --model")
    return spec  # a Hub id: from_pretrained fetches it when the Hub is reachable


def _file_digest(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so big weights are hashed once."""
    stat = path.stat()
    memo_path = home() / "digests.json"
    memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in memo:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        memo[key] = digest.hexdigest()
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_path)
    return memo[key]


def folder_fingerprint(folder: Path) -> str:
    """Hash of the config and every weight file: the identity of a checkpoint."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name == "config.json" or name.endswith((".safetensors", ".bin", ".json.index")):
            digest.update(name.encode())
            digest.update(_file_digest(folder / name).encode())
    return digest.hexdigest()


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
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = model
        self.path = resolve_model_path(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(
                self.path, dtype=self.dtype, use_safetensors=True, trust_remote_code=trust_remote_code
            )
        except EvalsuiteError:
            raise
        except Exception as err:  # any loader failure becomes one line that says what to do
            corrupt = type(err).__name__ == "SafetensorError"
            raise EvalsuiteError(
                f"Could not load model '{model}': {(str(err).splitlines() or [type(err).__name__])[0]}",
                "the weights file is corrupt or truncated: re-save or re-download the checkpoint"
                if corrupt
                else "give --model a local folder with config.json and safetensors weights, a .gguf file, "
                "'default', or a Hub id while the Hub is reachable",
            ) from err
        self.model.to(self.device).eval()
        if self.device.type == "cpu":
            prepare_cpu_weights(self.model)
        self.base = self.model.base_model
        self.head = self.model.get_output_embeddings()
        config = self.model.config
        self.max_length = max_length or getattr(config, "max_position_embeddings", None) or 2048
        self.batch_size = 32 if batch_size == "auto" else int(batch_size)
        self.prefix_token = (
            self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        )
        local = Path(self.path)
        self.fingerprint = folder_fingerprint(local) if local.is_dir() else f"hub:{self.path}"
        self._a_memo: tuple[tuple[int, ...], torch.Tensor, object] | None = None
        if chat_template not in ("auto", "on", "off"):
            raise EvalsuiteError(f"Unknown --chat-template '{chat_template}'.", "use auto, on or off")
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if chat_template == "on" and not has_template:
            raise EvalsuiteError(f"Model '{model}' has no chat template.", "use --chat-template off or auto")
        # Instruction-style prompts go through the model's chat template when it has one (chat models).
        self.use_chat_template = has_template and chat_template != "off"
        self.truncated_prompts = 0
        # Packing short sequences needs a custom 4-D attention mask, which these implementations take.
        self.pack_short = config._attn_implementation in ("sdpa", "eager")

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
        }

    @property
    def cache_namespace(self) -> str:
        """Responses depend on the weights, the numeric type and the window length."""
        return f"{self.fingerprint}|{self.dtype}|{self.max_length}|chat={self.use_chat_template}"

    # ---- request kinds --------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text).input_ids

    def encode_pair(self, context: str, continuation: str) -> TokenRequest:
        """Tokenise context+continuation together, so the boundary tokenises as it would in running text."""
        if not context:
            ctx, cont = [self.prefix_token], self.encode(continuation)
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
            for window in rolling_windows(self.encode(request.text), self.prefix_token, self.max_length):
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
        pending = list(range(len(requests)))
        while pending:
            try:
                for i, texts in decode_stream(self, requests, prompts, self._generation_order(pending, prompts)):
                    results[i] = texts
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise EvalsuiteError("Out of memory even at batch size 1.", "use a smaller model or --dtype") from None
                self.batch_size //= 2
                tqdm.write(f"out of memory: batch size halved to {self.batch_size}")
            pending = [i for i in pending if not results[i]]
        return results

    def _generation_order(self, indices: list[int], prompts: list[list[int]]) -> list[int]:
        """Prompts that share a start (questions about one passage) next to each other, so that they
        join the batch together and their prefill reads the passage once; longest first."""
        plan = plan_batches([TokenRequest(tuple(prompts[i]), 1) for i in indices], self.batch_size, split_on_prefix=False)
        return [indices[m] for batch in plan for fam in batch.families for m in fam.members]

    def _prompt_tokens(self, request: Generate) -> list[int]:
        text = request.context
        if request.chat and self.use_chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
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
        pending = list(range(len(requests)))
        while pending:
            sub = [requests[i] for i in pending]
            done: set[int] = set()
            try:
                for run, batch in self._plan(sub):
                    out = run(batch, sub)
                    for m, value in out.items():
                        results[pending[m]] = value
                        done.add(m)
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise EvalsuiteError(
                        "Out of memory even at batch size 1.", "use a smaller --max-length, --dtype or a larger device"
                    ) from None
                self.batch_size //= 2
                self._a_memo = None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                tqdm.write(f"out of memory: batch size halved to {self.batch_size}")
            pending = [p for j, p in enumerate(pending) if j not in done]
        return [(float(lp), bool(g)) for lp, g in results]

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
                hidden, next_cache = self._prefix_pass(reqs[root.members[0]].seq[: root.end])
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
        hidden, _ = self._forward(ids.to(self.device), mask[:, None].to(self.device), pos.to(self.device), None, False)
        acc = _Accumulator(self)
        for r, row in enumerate(rows):
            for node, offset in zip(row.nodes, offsets[r]):
                acc.add(node, hidden[r, offset:], reqs)
        acc.flush()
        return acc.totals

    def _run_nodes(self, nodes: list, cache, mask, keep_cache: bool):
        """One forward pass over tree nodes, each on top of its parent's row of ``cache``."""
        ids, row_mask = self._pad([node.tokens for node in nodes])
        past = None
        if cache is not None:
            parents = torch.tensor([n.parent for n in nodes], device=self.device)
            past = _select_rows(cache, parents)
            row_mask = torch.cat([mask.index_select(0, parents), row_mask], 1)
        starts = torch.tensor([n.start for n in nodes], device=self.device)
        pos = starts[:, None] + torch.arange(ids.shape[1], device=self.device)[None, :]
        hidden, new_cache = self._forward(ids, row_mask, pos, past, keep_cache)
        return hidden, new_cache, row_mask

    @staticmethod
    def _gather(acc: "_Accumulator", nodes: list, hidden: torch.Tensor, reqs: list[TokenRequest]) -> None:
        for row, node in enumerate(nodes):
            acc.add(node, hidden[row], reqs)
        acc.flush()

    def _prefix_pass(self, tokens: tuple[int, ...]):
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
            past = _slice_positions(cache_memo, keep)
            hidden_kept = hidden_memo[:, :keep]
        else:
            past, hidden_kept = None, None
        if keep < len(tokens):
            ids = torch.tensor([tokens[keep:]], device=self.device)
            positions = torch.arange(keep, len(tokens), device=self.device)[None, :]
            mask = torch.ones(1, len(tokens), dtype=torch.long, device=self.device)
            hidden_new, cache = self._forward(ids, mask, positions, past, True)
            hidden = hidden_new if hidden_kept is None else torch.cat([hidden_kept, hidden_new], 1)
        else:
            hidden, cache = hidden_kept, past
        self._a_memo = (tokens, hidden, cache)
        return hidden, cache

    def _pad(self, rows: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token rows; the mask marks real tokens."""
        width = max(1, max(len(r) for r in rows))
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _forward(self, ids, mask, positions, past, use_cache):
        out = self.base(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past, use_cache=use_cache
        )
        return out.last_hidden_state, out.past_key_values if use_cache else None

    def logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-softmax over the vocabulary for the given final hidden states (only where needed)."""
        return torch.log_softmax(self.logits(hidden), dim=-1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Float32 logits as the model defines them (its logit scale and soft-capping applied)."""
        logits = self.head(hidden).float()
        config = self.model.config
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


def _select_rows(cache, rows: torch.Tensor):
    """A new key/value cache holding the given batch rows (repeats allowed) of ``cache``."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys.index_select(0, rows), layer.values.index_select(0, rows)) for layer in cache.layers])


def _slice_positions(cache, length: int):
    """A new key/value cache holding the first ``length`` positions of ``cache``."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys[:, :, :length], layer.values[:, :, :length]) for layer in cache.layers])
