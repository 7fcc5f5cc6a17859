"""A stage's examples: its data files read (``formats``), the prompts of ``--split`` kept
(``splits``), validation cut by prompt, and the optional ``--limit`` subsets; with the report
lines that say what was read and what each file contributed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evalsuite.errors import EvalsuiteError
from evalsuite.trainers.formats import DataFile, load_all
from evalsuite.trainers.splits import prompt_key, select, split_valid


@dataclass
class StageData:
    train: list
    valid: list
    files: list[dict]  # the manifest's ``data`` entries
    report: list[str] = field(default_factory=list)


def subset(examples: list, limit: int, seed: int) -> list:
    """The first ``limit`` examples of a seeded order, kept in file order (0 = all)."""
    if not limit or limit >= len(examples):
        return examples
    keep = sorted(np.random.default_rng([seed, 7]).permutation(len(examples))[:limit].tolist())
    return [examples[i] for i in keep]


def _entries(files: list[DataFile], role: str, split: str) -> tuple[list, list[dict], list[str]]:
    examples, entries, lines = [], [], []
    for data in files:
        kept = select(data.examples, split)
        examples += kept
        entries.append(data.describe() | {"role": role, "split": split, "kept": len(kept)})
        lines.append(f"{role} data {data.summary()}" + (f"; {len(kept)} in split '{split}'" if split != "all" else ""))
    return examples, entries, lines


def gather(config, kind: str) -> StageData:
    """Training and validation examples of ``kind`` (``demonstrations`` or ``comparisons``)."""
    train, entries, lines = _entries(load_all(config.data, kind), "train", config.split)
    if config.valid_data:
        valid, more, more_lines = _entries(load_all(config.valid_data, kind), "valid", config.split)
        entries, lines = entries + more, lines + more_lines
        shared = {prompt_key(e.prompt) for e in train} & {prompt_key(e.prompt) for e in valid}
        if shared:
            lines.append(f"warning: {len(shared)} validation prompts also appear in the training data")
    else:
        train, valid = split_valid(train, config.valid_fraction)
    if not train:
        raise EvalsuiteError(f"No training {kind} left after --split {config.split}.",
                             "check --data, or use --split all")
    train, valid = subset(train, config.limit, config.seed), subset(valid, config.valid_limit, config.seed)
    lines.append(f"{len(train)} training and {len(valid)} validation {kind}")
    return StageData(train, valid, entries, lines)


def too_long(where: str, tokens: int, max_length: int, overlong: str) -> str:
    """``where`` (to be counted as skipped) when ``--overlong skip``; the one-line error otherwise."""
    if overlong == "skip":
        return where
    raise EvalsuiteError(f"{where}: the response is {tokens} tokens, too long for --max-length {max_length}.",
                         "raise --max-length, pass --overlong skip, or shorten or remove that example")
