"""The runner: from tasks to scored results, with every model call deduplicated and cached.

1. Each task loads its documents and turns each into requests.
2. Identical requests (across documents and tasks) are merged, and the cache is asked for them.
3. The missing ones go to the model in sorted chunks (so shared prefixes meet in one batch); each
   chunk is written to the cache as soon as it is done, which is what makes a run resumable.
   Under ``accelerate launch`` every process takes a contiguous shard and the results are gathered.
4. Each document is scored from its responses; each task aggregates its documents' scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from evalsuite.cache import RequestCache
from evalsuite.errors import EvalsuiteError
from evalsuite.requests import Request, Score, request_key, request_kind, response_from_json
from evalsuite.stats import Metric
from evalsuite.task import Dataset, Doc, Task

METHODS = {"Loglikelihood": "loglikelihood", "LoglikelihoodRolling": "loglikelihood_rolling", "Generate": "generate",
           "Score": "score"}
# Requests per chunk: small enough that an interrupted run loses little, large enough to batch well.
CHUNK = {"Loglikelihood": 512, "LoglikelihoodRolling": 4, "Generate": 64, "Score": 64}


@dataclass
class TaskResult:
    task: Task
    dataset: Dataset
    docs: list[Doc]
    requests: list[list[Request]]
    responses: list[list[Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Metric] = field(default_factory=dict)
    missing: int = 0  # responses that are None: failed scorer calls, reported, never counted as 0
    seconds: float = 0.0


@dataclass
class RunStats:
    unique_requests: int = 0
    from_cache: int = 0
    computed: int = 0
    model_seconds: float = 0.0
    kind_seconds: dict[str, float] = field(default_factory=dict)  # compute time per request kind


def _sort_key(request: Request):
    text = getattr(request, "context", None) or getattr(request, "text", "")
    if hasattr(request, "continuation"):
        return (text, request.continuation)
    return (-len(text), text)


def distributed_state():
    """(rank, world size, state) under ``accelerate launch``/``torchrun``; (0, 1, None) otherwise."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, None
    import torch
    from accelerate import PartialState

    # Without GPUs, Accelerate only sets up its gloo process group when told to run on CPU.
    state = PartialState(cpu=not torch.cuda.is_available())
    return state.process_index, state.num_processes, state


def _namespace(request: Request, model, scorers) -> str:
    return scorers.namespace(request.scorer) if isinstance(request, Score) else model.cache_namespace


def _call(model, scorers, kind: str, batch: list[Request]) -> list:
    if kind == "Score":
        try:
            return scorers.score(batch)
        except EvalsuiteError:
            raise  # misconfiguration (a missing API key, ...): stop cleanly, the cache keeps the rest
        except Exception as err:  # a scorer that breaks mid-run: these become missing values, the run goes on
            tqdm.write(f"warning: scorer {batch[0].scorer} failed on {len(batch)} texts ({err}); counted as missing")
            return [None] * len(batch)
    return getattr(model, METHODS[kind])(batch)


def compute_responses(model, scorers, requests: dict[str, Request], cache: RequestCache, stats: RunStats) -> dict:
    """Responses (JSON form) for every key, from the cache where possible, else computed."""
    groups: dict[tuple[str, str], list[str]] = {}  # (cache namespace, kind) -> keys
    for key, request in requests.items():
        groups.setdefault((_namespace(request, model, scorers), request_kind(request)), []).append(key)
    rank, world, state = distributed_state()
    found: dict[str, Any] = {}
    computed: dict[str, Any] = {}
    started = time.perf_counter()
    hits = {group: cache.get_many(group[0], keys) for group, keys in groups.items()}
    if state is not None:
        # Every process must shard the same list of misses: none may write to the cache before all
        # have looked it up, or a request another process found missing would be nobody's shard.
        state.wait_for_everyone()
    for (namespace, kind), keys in groups.items():
        found.update(hits[namespace, kind])
        missing = sorted((k for k in keys if k not in hits[namespace, kind]), key=lambda k: _sort_key(requests[k]))
        share = -(-len(missing) // world)  # contiguous shards keep shared prefixes on one process
        mine = missing[rank * share : (rank + 1) * share]
        kind_started = time.perf_counter()
        # A context manager, so an interrupted run closes its bar before the message that follows.
        with tqdm(total=len(mine), desc=METHODS[kind], unit="req", disable=rank != 0 or not mine) as bar:
            for start in range(0, len(mine), CHUNK[kind]):
                chunk = mine[start : start + CHUNK[kind]]
                answers = _call(model, scorers, kind, [requests[k] for k in chunk])
                rows = [(k, kind, _jsonable(o)) for k, o in zip(chunk, answers)]
                # A failed score is not cached, so the next run tries it again.
                cache.put_many(namespace, [row for row in rows if row[2] is not None])
                computed.update((k, v) for k, _, v in rows)
                bar.update(len(chunk))
        stats.kind_seconds[kind] = stats.kind_seconds.get(kind, 0.0) + time.perf_counter() - kind_started
    if state is not None:
        from accelerate.utils import gather_object

        state.wait_for_everyone()
        for part in gather_object([computed]):
            computed.update(part)
    stats.unique_requests += len(requests)
    stats.from_cache += len(found)
    stats.computed += len(computed)
    stats.model_seconds += time.perf_counter() - started
    return found | computed


def _jsonable(response):
    return list(response) if isinstance(response, tuple) else response


def _respond(stage: list[list[list[Request]]], model, scorers, cache, stats) -> list[list[list[Any]]]:
    """Compute one stage's requests (per task, per document) for every task at once; typed responses."""
    unique = {request_key(r): r for per_task in stage for reqs in per_task for r in reqs}
    responses = compute_responses(model, scorers, unique, cache, stats)
    typed = [[[response_from_json(r, responses[request_key(r)]) for r in reqs] for reqs in per_task]
             for per_task in stage]
    return typed


def prepare(tasks: list[Task], data_dir, limit: int | None) -> list[TaskResult]:
    """Load every task's documents and build their requests: no model needed, so bad data or task
    parameters fail before a checkpoint is loaded."""
    results = []
    for task in tasks:
        dataset = task.load(data_dir)
        docs = dataset.docs[:limit] if limit else dataset.docs
        results.append(TaskResult(task, dataset, docs, [task.requests(doc) for doc in docs]))
    return results


def evaluate(model, tasks: list[Task], data_dir, limit: int | None, cache: RequestCache, scorers=None):
    """Score every task; returns the per-task results and request statistics."""
    return evaluate_prepared(model, prepare(tasks, data_dir, limit), cache, scorers)


def evaluate_prepared(model, results: list[TaskResult], cache: RequestCache, scorers=None):
    """``evaluate`` on tasks already ``prepare``d."""
    stats = RunStats()
    for res, typed in zip(results, _respond([res.requests for res in results], model, scorers, cache, stats)):
        res.responses = typed
    # Second stage: requests that depend on the first responses (e.g. toxicity of the generated text).
    followups = [
        [res.task.followup(doc, resp) if res.task.followup else [] for doc, resp in zip(res.docs, res.responses)]
        for res in results
    ]
    if any(reqs for per_task in followups for reqs in per_task):
        for res, extra, typed in zip(results, followups, _respond(followups, model, scorers, cache, stats)):
            res.requests = [a + b for a, b in zip(res.requests, extra)]
            res.responses = [a + b for a, b in zip(res.responses, typed)]
    for res in results:
        started = time.perf_counter()
        res.scores = [res.task.score(doc, resp) for doc, resp in zip(res.docs, res.responses)]
        res.metrics = res.task.aggregate(res.docs, res.scores)
        res.missing = sum(r is None for resps in res.responses for r in resps)
        res.seconds = time.perf_counter() - started
    return results, stats

