"""The requests a task can make of a model, and the responses it gets back.

Requests are frozen dataclasses: hashable, so the runner can deduplicate them across tasks, and
serialisable to a stable key, so the cache can find them again in a later run.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class Loglikelihood:
    """Log-probability of ``continuation`` given ``context`` (summed over the continuation's tokens)."""

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodRolling:
    """Log-probability of a whole text, scored in windows of the model's maximum length."""

    text: str


@dataclass(frozen=True)
class Generate:
    """A completion of ``context``: greedy when ``temperature`` is 0, else ``n`` seeded samples."""

    context: str
    stop: tuple[str, ...] = ()
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    chat: bool = False  # an instruction: wrap it in the model's chat template when it has one


@dataclass(frozen=True)
class Score:
    """A number for ``text`` from a scorer, not the model under test: ``"toxicity"`` (probability
    that ``text`` is toxic) or ``"judge:<template>"`` (a judge's probability of "yes" for ``text``
    given ``context``, e.g. ``judge:supported`` with the source passage as context).
    The response is ``None`` when the scorer failed on it: a missing value, never a 0."""

    scorer: str
    text: str
    context: str = ""


Request = Loglikelihood | LoglikelihoodRolling | Generate | Score


class LoglikelihoodResult(NamedTuple):
    logprob: float
    is_greedy: bool  # every continuation token was the argmax
    n_tokens: int


class RollingResult(NamedTuple):
    logprob: float
    n_tokens: int


def request_kind(request: Request) -> str:
    return type(request).__name__


def request_key(request: Request) -> str:
    """A stable digest of the request: same request, same key, in any process or run."""
    payload = json.dumps([request_kind(request), asdict(request)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def response_from_json(request: Request, value):
    """Rebuild a typed response from its JSON form (as stored in the cache)."""
    if isinstance(request, Loglikelihood):
        return LoglikelihoodResult(*value)
    if isinstance(request, LoglikelihoodRolling):
        return RollingResult(*value)
    if isinstance(request, Score):
        return value
    return list(value)
