"""PPO's episodes: prompts as tokens, responses sampled by evalsuite's batched generation, and the
batched passes over the generated sequences (policy and reference log-probabilities, values,
reward-model scores), one forward pass per model per batch.

An episode is its prompt's tokens followed by its response's tokens (the EOS token included when
the response ended). Episodes are packed side by side into rows under a 4-D mask (each sees only
itself, positions restart at 0) or, where the attention takes no such mask, right-padded one per
row (``Layout``). An episode starting at column ``s`` has response token ``t`` at ``s + P + t``,
predicted from the hidden state one column before; the value of the state before token ``t`` is
read at that same column (the value model is a sequence classifier whose score head is applied at
every position), and the reward model reads the episode's last token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import decode_text, json_lines, sha256_file
from evalsuite.models.chat import prompt_text
from evalsuite.models.hf import model_logits
from evalsuite.models.reward import score_hidden
from evalsuite.requests import Generate
from evalsuite.trainers import batches
from evalsuite.trainers.losses import CHUNK
from evalsuite.trainers.packing import Tree
from evalsuite.trainers.ppo_core import entropy_of

# --- prompts ---------------------------------------------------------------------------------------


def encode_prompts(tokenizer, prompts: list, use_template: bool, room: int, overlong: str) -> tuple[list, list]:
    """(token ids of each prompt that fits in ``room`` tokens, where the skipped ones are): the text
    ``evalsuite run`` and the SFT stage give the policy. A longer prompt is an error unless
    ``overlong`` is ``skip``."""
    texts = [prompt_text(tokenizer, p.prompt, use_template) for p in prompts]
    ids = tokenizer(texts, add_special_tokens=not use_template).input_ids if texts else []
    kept, skipped = [], []
    for prompt, tokens in zip(prompts, ids):
        if len(tokens) <= room:
            kept.append(list(tokens))
        elif overlong == "skip":
            skipped.append(prompt.where)
        else:
            raise EvalsuiteError(
                f"{prompt.where}: the prompt is {len(tokens)} tokens, longer than the {room} that --max-length "
                "leaves after --response-length.",
                "raise --max-length, lower --response-length, pass --overlong skip, or remove that prompt")
    return kept, skipped


# --- sampling --------------------------------------------------------------------------------------


@dataclass
class Episodes:
    prompts: list[list[int]]
    responses: list[list[int]]  # the sampled tokens, EOS included when ``ended``
    ended: list[bool]
    texts: list[str]

    def subset(self, rows) -> Episodes:
        picked = [int(i) for i in rows]
        return Episodes(*([getattr(self, f.name)[i] for i in picked] for f in fields(self)))

    @property
    def tokens(self) -> int:
        """Prompt and response tokens of every episode."""
        return sum(len(p) + len(r) for p, r in zip(self.prompts, self.responses))


def episode_seed(seed: int, step: int, prompt: int) -> int:
    """The sampling seed of one episode: fixed by the run's seed, the step and the prompt, so a
    resumed run samples exactly what the uninterrupted one did."""
    digest = hashlib.sha256(f"ppo|{seed}|{step}|{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample(engine, prompts: list[list[int]], seeds: list[int], max_tokens: int, temperature: float,
           top_p: float) -> Episodes:
    """One response per prompt from ``engine`` (an ``HFModel`` around the policy): continuous
    batching, prompts sharing a start prefilled once, each sample from its own seeded generator."""
    engine.forget_prefix()  # the weights changed since the last rollout
    requests = [Generate("", max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=s) for s in seeds]
    was_training = engine.model.training
    engine.model.eval()
    try:
        out = [samples[0] for samples in engine.sample_tokens(requests, prompts)]
    finally:
        engine.model.train(was_training)
    return Episodes(list(prompts), [list(o[1]) for o in out], [o[2] for o in out], [o[0] for o in out])


# --- the generated sequences as tensors --------------------------------------------------------------


@dataclass
class Tokens:
    """Episode rows, packed or padded, and where each episode's response tokens are."""

    input_ids: torch.Tensor  # (R, W)
    attention_mask: torch.Tensor  # (R, W) padded; (R, 1, W, W) packed (episodes side by side, each sees itself)
    position_ids: torch.Tensor  # (R, W): restarting at 0 for each episode
    row: torch.Tensor  # (B,): the row holding episode b
    cols: torch.Tensor  # (B, T): the column whose hidden state predicts response token t
    targets: torch.Tensor  # (B, T): response token t
    mask: torch.Tensor  # (B, T) float: 1 on real response tokens
    last: torch.Tensor  # (B,): the column of each episode's last token (the reward model reads there)

    def to(self, device) -> Tokens:
        return Tokens(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


@dataclass(frozen=True)
class Layout:
    """How episodes become rows: packed side by side under a 4-D mask (``attn`` names the model's
    attention, ``width`` the most tokens per row), as the SFT and reward-model stages do, or one
    right-padded row each (``attn`` None). Both give the same numbers; packing skips the padding."""

    pad_id: int
    attn: str | None = None
    width: int = 0

    def __call__(self, episodes: Episodes) -> Tokens:
        trees = [Tree((), (tuple(p + r),)) for p, r in zip(episodes.prompts, episodes.responses)]
        if self.attn is None:
            batch = batches.padded(trees, self.pad_id)
            positions = torch.arange(batch.input_ids.shape[1]).expand_as(batch.input_ids).contiguous()
        else:
            batch = batches.packed(trees, self.width, self.pad_id, self.attn, torch.float32)
            positions = batch.position_ids
        n, steps = len(trees), max(len(r) for r in episodes.responses)
        cols = torch.zeros(n, steps, dtype=torch.long)
        targets = torch.full((n, steps), self.pad_id, dtype=torch.long)
        mask = torch.zeros(n, steps)
        for i, (prompt, response) in enumerate(zip(episodes.prompts, episodes.responses)):
            t, first = len(response), int(batch.span_start[i]) + len(prompt) - 1
            cols[i, :t] = torch.arange(first, first + t)
            targets[i, :t] = torch.tensor(response, dtype=torch.long)
            mask[i, :t] = 1.0
        last = batch.span_start + batch.span_len - 1
        return Tokens(batch.input_ids, batch.attention_mask, positions, batch.span_row, cols, targets, mask, last)


def hidden_states(model, tokens: Tokens) -> torch.Tensor:
    return model.base_model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
                            position_ids=tokens.position_ids, use_cache=False).last_hidden_state


def at_response(hidden: torch.Tensor, tokens: Tokens) -> torch.Tensor:
    """(B, T, H): the hidden state before each response token."""
    return hidden[tokens.row[:, None], tokens.cols]


def token_logprobs(model, tokens: Tokens, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log-probability of each response token (B, T), its distribution's entropy or None); 0 on
    padding. Differentiable; only real response positions go through the vocabulary projection,
    ``CHUNK`` at a time."""
    picked = at_response(hidden_states(model, tokens), tokens)
    real = tokens.mask.bool()
    flat, targets = picked[real], tokens.targets[real]
    head = model.get_output_embeddings()
    logps, entropies = [], []
    for start in range(0, max(1, flat.shape[0]), CHUNK):
        logits = model_logits(head, model.config, flat[start : start + CHUNK])
        logps.append(torch.log_softmax(logits, -1).gather(1, targets[start : start + CHUNK, None])[:, 0])
        if with_entropy:
            with torch.no_grad():
                entropies.append(entropy_of(logits))
    def spread(values):  # back to (B, T), zeros on padding
        return torch.zeros(real.shape, dtype=torch.float32, device=flat.device).masked_scatter(real, torch.cat(values))

    return spread(logps), spread(entropies) if with_entropy else None


def token_values(value_model, tokens: Tokens) -> torch.Tensor:
    """(B, T): the value of the state before each response token (0 on padding). Differentiable."""
    return score_hidden(value_model, at_response(hidden_states(value_model, tokens), tokens)) * tokens.mask


def final_scores(reward_model, tokens: Tokens) -> torch.Tensor:
    """(B,): the reward model's score of each whole episode, read at its last token (the EOS of a
    response that ended), exactly where ``RewardModel`` reads a dialogue."""
    hidden = hidden_states(reward_model, tokens)
    return score_hidden(reward_model, hidden[tokens.row, tokens.last])


class RewardScorer:
    """The default scorer: a frozen reward model applied to the episodes, ``batch_size`` at a time
    (one pass per batch, laid out as the policy's passes are)."""

    def __init__(self, model, batch_size: int, layout: Layout):
        self.model, self.batch_size, self.layout = model, batch_size, layout

    @torch.no_grad()
    def __call__(self, episodes: Episodes, tokens: Tokens) -> torch.Tensor:
        if len(episodes.prompts) <= self.batch_size:  # one pass: the rows already laid out
            return final_scores(self.model, tokens)
        device, out = tokens.input_ids.device, []
        for start in range(0, len(episodes.prompts), self.batch_size):
            chunk = episodes.subset(range(start, min(start + self.batch_size, len(episodes.prompts))))
            out.append(final_scores(self.model, self.layout(chunk).to(device)))
        return torch.cat(out)


# --- pretraining text for PPO-ptx ----------------------------------------------------------------


@dataclass
class PtxText:
    rows: torch.Tensor  # (N, length) token ids
    files: list[dict]  # the manifest's ``data`` entries

    def draw(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        return self.rows[torch.as_tensor(rng.integers(0, len(self.rows), n))]


def read_texts(spec: str) -> list[str]:
    """The documents of a pretraining file: a plain text file is one document; JSON Lines rows (or
    a .jsonl.gz) give their ``text`` field."""
    import gzip

    path = Path(spec).expanduser()
    if not path.is_file():
        raise EvalsuiteError(f"Pretraining data {spec} does not exist.", "check the path given to --ptx-data")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    text = decode_text(raw, path)
    if not path.name.removesuffix(".gz").endswith((".jsonl", ".json")):
        return [text]
    docs = []
    for line, row in json_lines(text, path):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise EvalsuiteError(f"{path} line {line}: a pretraining row needs a 'text' field.",
                                 "give JSON Lines rows like {\"text\": \"...\"}, or a plain .txt file")
        docs.append(row["text"])
    return docs


def load_ptx(specs: list[str], tokenizer, length: int) -> PtxText:
    """Every file's documents, tokenised and cut into rows of ``length`` tokens (a document's last,
    shorter piece is dropped, so a row never mixes padding in)."""
    rows, files = [], []
    for spec in specs:
        docs = read_texts(spec)
        before = len(rows)
        for ids in tokenizer(docs, add_special_tokens=False).input_ids:
            rows += [ids[s : s + length] for s in range(0, len(ids) - length + 1, length)]
        path = Path(spec).expanduser()
        files.append({"path": str(path.resolve()), "sha256": sha256_file(path), "role": "ptx",
                      "documents": len(docs), "rows": len(rows) - before, "row_tokens": length})
        if len(rows) == before:
            raise EvalsuiteError(f"Pretraining data {spec} holds no run of {length} tokens.",
                                 "give a longer text, or lower --ptx-length")
    return PtxText(torch.tensor(rows, dtype=torch.long), files)


def ptx_nll(model, rows: torch.Tensor, fused: bool) -> tuple[torch.Tensor, int]:
    """(summed NLL of every token after the first of each row, how many): plain language modelling."""
    from evalsuite.trainers.losses import token_nll

    hidden = model.base_model(input_ids=rows, use_cache=False).last_hidden_state[:, :-1].flatten(0, 1)
    head = model.get_output_embeddings()
    params = [p for p in head.parameters() if p.requires_grad]
    targets = rows[:, 1:].reshape(-1)
    nll = token_nll(hidden, targets, lambda h: model_logits(head, model.config, h), params, fused=fused)
    return nll, targets.numel()
