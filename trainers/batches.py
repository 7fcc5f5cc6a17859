"""Micro-batches as tensors: trees (see ``packing``) packed into rows under a 4-D attention mask, or
one padded row per sequence under the usual 2-D mask.

Either way a ``Batch`` says where each branch sits (``span_row``, ``span_start``, ``span_len``: one
entry per branch, trees in order), which is all a stage needs to find its targets (SFT: every
branch token, predicted from the column before it) or its read-outs (reward model: each branch's
last token). The two layouts give the same numbers; a test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evalsuite.models.reward import pad_rows
from evalsuite.trainers.packing import Tree, first_fit, layout, sequences


@dataclass
class Batch:
    input_ids: torch.Tensor
    position_ids: torch.Tensor | None
    attention_mask: torch.Tensor  # (rows, 1, width, width) when packed, (rows, width) when padded
    span_row: torch.Tensor
    span_start: torch.Tensor
    span_len: torch.Tensor
    tokens: int  # tokens of the sequences the trees stand for (a shared prefix counted once per branch)
    trees: int
    sizes: list[int]  # branches of each tree, in order
    empty: bool = False  # a stand-in for a micro-batch without examples: it runs, and counts for nothing
    offsets: torch.Tensor | None = None  # per branch: a fixed term the loss adds (the reward model's length expert)

    def model_inputs(self) -> dict:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.position_ids is not None:
            inputs["position_ids"] = self.position_ids
        return inputs

    def to(self, device) -> Batch:
        move = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Batch(**move)


def packed(trees: list[Tree], width: int, pad_id: int, attn: str, dtype: torch.dtype) -> Batch:
    """Trees in rows of at most ``width`` tokens (a wider tree gets a row of its own)."""
    plan = first_fit([t.size for t in trees], width)
    rows = [layout([trees[i] for i in members]) for members in plan]
    order = [i for members in plan for i in members]
    cols = max(len(r.tokens) for r in rows)
    ids = torch.full((len(rows), cols), pad_id, dtype=torch.long)
    pos = torch.zeros(len(rows), cols, dtype=torch.long)
    group = -1 - torch.arange(cols).repeat(len(rows), 1)  # padding: a group of its own, sees only itself
    segment = torch.full((len(rows), cols), -1, dtype=torch.long)
    spans: dict[int, list[tuple[int, int, int]]] = {}
    tree_iter = iter(order)
    for r, row in enumerate(rows):
        n = len(row.tokens)
        ids[r, :n] = torch.tensor(row.tokens)
        pos[r, :n] = torch.tensor(row.positions)
        group[r, :n] = torch.tensor(row.group)
        segment[r, :n] = torch.tensor(row.segment)
        for tree_spans in row.branch_spans:
            spans[next(tree_iter)] = [(r, start, length) for start, length in tree_spans]
    causal = torch.ones(cols, cols, dtype=torch.bool).tril()
    seen = (segment[:, :, None] == segment[:, None, :]) | (segment[:, None, :] == 0)  # own branch or the prefix
    allowed = (group[:, :, None] == group[:, None, :]) & seen & causal
    flat = [span for i in range(len(trees)) for span in spans[i]]
    return _batch(ids, pos, attention_mask(allowed[:, None], attn, dtype), flat, trees)


def attention_mask(allowed: torch.Tensor, attn: str, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask for sdpa (True = may attend); an additive one for eager attention."""
    if attn == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)


def padded(trees: list[Tree], pad_id: int) -> Batch:
    """Every prefix+branch as a right-padded row of its own."""
    rows, flat = [], []
    for tree in trees:
        for seq, branch in zip(sequences(tree), tree.branches):
            flat.append((len(rows), len(tree.prefix), len(branch)))
            rows.append(list(seq))
    ids, mask = pad_rows(rows, pad_id, "cpu")
    return _batch(ids, None, mask, flat, trees)


def _batch(ids, pos, mask, flat: list[tuple[int, int, int]], trees: list[Tree]) -> Batch:
    span = torch.tensor(flat, dtype=torch.long).reshape(-1, 3)
    tokens = sum(len(t.prefix) * len(t.branches) + t.size - len(t.prefix) for t in trees)
    sizes = [len(t.branches) for t in trees]
    return Batch(ids, pos, mask, span[:, 0], span[:, 1], span[:, 2], tokens, len(trees), sizes)


def branch_ends(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of each branch's last token: where a reward model reads its score."""
    return batch.span_row, batch.span_start + batch.span_len - 1


def branch_targets(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, column, target token, branch index) for every branch token, each predicted from the
    column before it (the first from the prefix's last token): SFT's response-only loss positions."""
    lengths = batch.span_len
    rows = torch.repeat_interleave(batch.span_row, lengths)
    owner = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    offset = torch.arange(int(lengths.sum())) - torch.repeat_interleave(starts, lengths)
    cols = torch.repeat_interleave(batch.span_start, lengths) + offset - 1
    return rows, cols, batch.input_ids[rows, cols + 1], owner
