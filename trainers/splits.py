"""Which prompts each stage may train on, so that no prompt trains one stage and evaluates another.

Every prompt (the chat messages before a response) falls, by a hash of its text, into one of two
parts, the same in every file and on every machine:

- ``heldout`` (a fixed 20%): reserved for PPO prompts and held-out evaluation. SFT and reward-model
  training never see these prompts when run with ``--split train``;
- ``train`` (the other 80%): SFT demonstrations and reward-model comparisons. Their validation split
  (``--valid-fraction``) is cut inside this part by a second, independent hash of the prompt, so all
  responses of one prompt sit on the same side and a prompt is never trained on and validated on.

Because the part is a function of the prompt text alone, the same prompt found in two files (HH-RLHF's
harmless and helpful sets share openings such as greetings) lands in the same part in both.

The bundled recipe on the public data (see the trainer documentation for the commands):

| data | stage | --split |
| --- | --- | --- |
| stanford_alpaca/seed_tasks.jsonl, self_instruct/user_oriented_instructions.jsonl | SFT (train + valid) | train |
| hh_rlhf/{harmless,helpful}-base/test.jsonl.gz | reward model (train + valid) | train |
| the same four files | PPO prompts, held-out reward accuracy, evaluation | heldout |
"""

from __future__ import annotations

import hashlib

HELDOUT_FRACTION = 0.2  # fixed: changing it would move prompts between parts across stages
PART_SALT = "evalsuite-part-v1"
VALID_SALT = "evalsuite-valid-v1"


def prompt_key(messages: list[dict]) -> str:
    """The text a prompt is known by: its turns, role and stripped content, one per line."""
    return "\n".join(f"{m['role']}: {m['content'].strip()}" for m in messages)


def bucket(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``key`` and ``salt`` (the first 64 bits of a sha256)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def part(messages: list[dict]) -> str:
    return "heldout" if bucket(prompt_key(messages), PART_SALT) < HELDOUT_FRACTION else "train"


def select(examples: list, split: str) -> list:
    """The examples whose prompt is in ``split`` (``all`` keeps every one)."""
    if split == "all":
        return list(examples)
    return [e for e in examples if part(e.prompt) == split]


def split_valid(examples: list, fraction: float) -> tuple[list, list]:
    """(train, valid): a prompt goes to validation when its second hash is below ``fraction``."""
    if fraction <= 0:
        return list(examples), []
    valid_flags = [bucket(prompt_key(e.prompt), VALID_SALT) < fraction for e in examples]
    return ([e for e, v in zip(examples, valid_flags) if not v], [e for e, v in zip(examples, valid_flags) if v])
