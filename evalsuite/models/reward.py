"""Reward models: a one-label ``AutoModelForSequenceClassification`` checkpoint scores a whole
dialogue with one number, read at its last token (the response's end-of-sequence token).

The format is the standard one (TRL and OpenRLHF load it unchanged). Its head has no bias in most
architectures, so the offset that centres rewards (``evalsuite train rm --demos``: demonstrations
score 0 on average) is kept in the config as ``reward_offset`` and added here; plain transformers
returns the same rewards minus that constant, which changes no preference.

Used by the trainer (reward-model training and evaluation, PPO's rewards), the ``rm:`` pairwise
judge, and anything else that needs a reward.
"""

from __future__ import annotations

import torch

from evalsuite.models.chat import dialogue_text, use_chat_template
from evalsuite.models.loading import (
    fingerprint,
    halving_batches,
    load_tokenizer,
    load_weights,
    resolve_device,
    resolve_dtype,
    resolve_model_path,
)


def last_token_rewards(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rewards (float32, one per row) of right-padded rows: the score head applied to the hidden
    state of each row's last real token. Differentiable, so training uses it too."""
    hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    last = mask.sum(1) - 1
    return score_hidden(model, hidden[torch.arange(ids.shape[0], device=ids.device), last])


def score_hidden(model, hidden: torch.Tensor) -> torch.Tensor:
    """Rewards (float32) of final hidden states already picked at the tokens to read: the score head
    plus ``config.reward_offset``. The trainer's packed rows pick their own positions and use it."""
    offset = float(getattr(model.config, "reward_offset", 0.0) or 0.0)
    return model.score(hidden).squeeze(-1).float() + offset


def pad_rows(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids and their attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


class RewardModel:
    """A reward checkpoint ready to score dialogues, batched by length, in evaluation mode."""

    def __init__(self, spec: str, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                 max_length: int | None = None, chat_template: str = "auto", trust_remote_code: bool = False,
                 flag: str = "--reward"):
        self.spec = spec
        self.path = resolve_model_path(spec, flag)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(self.path, trust_remote_code, flag)
        self.model = load_weights(self.path, "reward", self.dtype, trust_remote_code, flag, spec)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        config = self.model.config
        self.max_length = max_length or getattr(config, "max_position_embeddings", None) or 2048
        self.use_chat_template = use_chat_template(self.tokenizer, chat_template, spec)
        self.fingerprint = fingerprint(self.path)
        self.pad_id = config.pad_token_id if config.pad_token_id is not None else 0

    def text(self, messages: list[dict], response: str) -> str:
        return dialogue_text(self.tokenizer, messages, response, self.use_chat_template)

    def score(self, dialogues: list[tuple[list[dict], str]]) -> list[float]:
        """The reward of each (messages before the response, response)."""
        return self.score_texts([self.text(m, r) for m, r in dialogues])

    def score_texts(self, texts: list[str]) -> list[float]:
        """The reward of each formatted dialogue (see ``chat.dialogue_text``); over-long ones keep their end."""
        rows = [self.tokenizer(t, add_special_tokens=False).input_ids[-self.max_length :] for t in texts]
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))  # similar lengths share a batch
        out = [0.0] * len(rows)

        def work(pending: list[int]):
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                ids, mask = pad_rows([rows[order[i]] for i in chunk], self.pad_id, self.device)
                with torch.no_grad():
                    rewards = last_token_rewards(self.model, ids, mask).tolist()
                for i, reward in zip(chunk, rewards):
                    out[order[i]] = reward
                    yield i

        halving_batches(self, list(range(len(rows))), work)
        return out

    def describe(self) -> dict:
        return {"spec": self.spec, "path": self.path, "fingerprint": self.fingerprint,
                "class": type(self.model).__name__, "chat_template": self.use_chat_template}
