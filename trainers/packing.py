"""Planning, without torch: which examples form each optimizer step, and how a micro-batch's
sequences are laid out in rows.

**The data order.** Epoch ``e`` visits the training examples in a permutation seeded by
``(seed, e)``. Step ``s`` takes the next global batch of ``batch_size * grad_accum * processes``
examples, cut into ``grad_accum * processes`` micro-batches of ``batch_size``: micro-step ``m`` of
process ``r`` gets chunk ``m * processes + r``. A step therefore covers the same examples whatever
the number of processes, which is what makes two processes train like one with the same global
batch, and the position in the data is just the step number (a resumed run recomputes it).

**Rows.** An example is a ``Tree``: a shared ``prefix`` and one or more ``branches`` that each
continue it (SFT: no prefix, one branch = the whole sequence; reward model: the prompt's tokens and
one branch per response). Packed, trees sit side by side in rows of at most ``width`` tokens
(first-fit decreasing); each token sees only its own branch and its tree's prefix, and positions
restart in each tree (``layout``). Padded, every prefix+branch is a row of its own, and each
window of 16 global batches is sorted by length so that a batch pads little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tree:
    prefix: tuple[int, ...]
    branches: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        return len(self.prefix) + sum(len(b) for b in self.branches)


@dataclass
class Schedule:
    """The optimizer steps of a run: how many, and which examples each micro-batch holds."""

    n_examples: int
    batch_size: int
    grad_accum: int
    processes: int
    epochs: int
    max_steps: int
    seed: int
    shuffle: bool = True
    lengths: list[int] | None = None  # given for padded rows: batches then group similar lengths

    GROUP = 16  # global batches whose examples are sorted by length together

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.processes

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.n_examples / self.global_batch))

    @property
    def total_steps(self) -> int:
        return self.max_steps or self.epochs * self.steps_per_epoch

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def ends_epoch(self, step: int) -> bool:
        """Whether optimizer step ``step`` (0-based) is the last of its epoch."""
        return (step + 1) % self.steps_per_epoch == 0

    def order(self, epoch: int) -> list[int]:
        """The epoch's permutation; with ``lengths``, sorted longest first inside each window of
        ``GROUP`` global batches, so that a padded batch holds sequences of similar length."""
        if not self.shuffle:
            order = list(range(self.n_examples))
        else:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_examples).tolist()
        if self.lengths is None:
            return order
        window = self.GROUP * self.global_batch
        return [i for start in range(0, len(order), window)
                for i in sorted(order[start : start + window], key=lambda k: -self.lengths[k])]

    def step_examples(self, step: int) -> list[int]:
        """Every example of optimizer step ``step``, over all processes and micro-batches."""
        within = step % self.steps_per_epoch
        return self.order(self.epoch_of(step))[within * self.global_batch : (within + 1) * self.global_batch]

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """The ``grad_accum`` micro-batches of process ``rank`` (the last step's may be short or empty)."""
        examples = self.step_examples(step)
        chunks = [examples[c * self.batch_size : (c + 1) * self.batch_size]
                  for c in range(self.grad_accum * self.processes)]
        return [chunks[m * self.processes + rank] for m in range(self.grad_accum)]


def first_fit(sizes: list[int], width: int) -> list[list[int]]:
    """Indices of ``sizes`` grouped into rows of at most ``width`` (first-fit decreasing; an item
    wider than ``width`` gets a row of its own). Deterministic: ties keep their input order."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        for r, free in enumerate(room):
            if sizes[i] <= free:
                rows[r].append(i)
                room[r] -= sizes[i]
                break
        else:
            rows.append([i])
            room.append(width - sizes[i])
    return rows


@dataclass
class RowLayout:
    """One packed row: flat token lists plus, per tree, where each branch sits."""

    tokens: list[int]
    positions: list[int]
    group: list[int]  # which tree of the row each token belongs to
    segment: list[int]  # 0 = the tree's prefix, k = its k-th branch
    branch_spans: list[list[tuple[int, int]]]  # per tree: (start column, length) of each branch


def layout(trees: list[Tree]) -> RowLayout:
    """Trees side by side: each prefix then its branches, positions restarting at each tree and
    every branch continuing its prefix's positions."""
    row = RowLayout([], [], [], [], [])
    for g, tree in enumerate(trees):
        p = len(tree.prefix)
        row.tokens += tree.prefix
        row.positions += range(p)
        row.group += [g] * p
        row.segment += [0] * p
        spans = []
        for k, branch in enumerate(tree.branches, start=1):
            spans.append((len(row.tokens), len(branch)))
            row.tokens += branch
            row.positions += range(p, p + len(branch))
            row.group += [g] * len(branch)
            row.segment += [k] * len(branch)
        row.branch_spans.append(spans)
    return row


def sequences(tree: Tree) -> list[tuple[int, ...]]:
    """The whole sequences a tree stands for (prefix + each branch): the padded layout's rows."""
    return [tree.prefix + branch for branch in tree.branches]


def cut_prefix(prefix: tuple[int, ...], branches: list[tuple[int, ...]], max_length: int) -> tuple[int, ...] | None:
    """The end of ``prefix`` that lets every prefix+branch fit in ``max_length`` tokens, keeping at
    least one prefix token (a response is read after its prompt); None when that cannot be done."""
    keep = max_length - max(len(b) for b in branches)
    if keep < (1 if prefix else 0):
        return None
    return prefix[len(prefix) - keep :] if keep < len(prefix) else prefix
