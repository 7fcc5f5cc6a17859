"""What a task is: a dataset, a way to turn one document into requests, and a way to score it.

A task plugin is a small function decorated with ``@task`` (see ``registry``) that returns a
``Task``. The task never touches a model: the runner sends its requests, and gives the responses
back to ``score`` one document at a time, then hands every document's scores to ``aggregate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.requests import Request
from evalsuite.stats import Metric, mean_metrics

Doc = dict[str, Any]


@dataclass(frozen=True)
class Dataset:
    docs: list[Doc]  # each has a unique "id"
    source: str  # the file, Hub dataset, or bundled sample it came from
    sha256: str  # digest of the bytes read, recorded with every result


@dataclass
class Task:
    name: str
    load: Callable[[Path | None], Dataset]  # data folder (or None: Hub, else bundled sample) -> Dataset
    requests: Callable[[Doc], list[Request]]
    score: Callable[[Doc, list[Any]], dict[str, Any]]  # one document's responses -> its per-sample scores
    primary_metric: str
    # Optional second stage, from the first responses: e.g. scoring the toxicity of generated text.
    # ``score`` then receives the first-stage responses followed by these.
    followup: Callable[[Doc, list[Any]], list[Request]] | None = None
    aggregate: Callable[[list[Doc], list[dict[str, Any]]], dict[str, Metric]] = field(default=None)  # type: ignore
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    version: str = "1"
    description: str = ""
    data: str = ""  # where the data comes from, for `evalsuite tasks`
    params: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # the factory's declared defaults
    # What the task measures, for the alignment-tax table: "alignment" (truthfulness, toxicity,
    # bias, hallucination, win rate) or "capability" (reading comprehension, language modelling).
    group: str = "capability"  # or "judge": a check of a judge's agreement with labels
    ideal: dict[str, float] = field(default_factory=dict)  # metrics best at a value, not an end (0.5)
    key: str = ""  # its name in a run record (``registry.task_key``); the name when no parameter changed

    def __post_init__(self):
        if self.aggregate is None:
            self.aggregate = lambda docs, scores: mean_metrics(scores)
        self.key = self.key or self.name
