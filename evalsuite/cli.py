"""The ``evalsuite`` command: ``run`` scores a checkpoint on tasks; ``tasks`` lists them.

A request's path: ``main`` -> ``cmd_run`` builds the tasks (``registry``) and the model
(``models.hf``), ``runner.evaluate`` merges and caches requests and calls the model, and
``results.write_run`` writes the run record.
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path

from evalsuite.errors import EvalsuiteError

DEFAULT_TASKS = "truthfulqa_mc1,truthfulqa_mc2,crows_pairs,winogender,wikitext"


def parse_task_spec(spec: str) -> tuple[str, dict]:
    """``name`` or ``name:key=value:key=value`` (values stay strings; ints are converted)."""
    name, *pairs = spec.strip().split(":")
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise EvalsuiteError(f"Bad task parameter '{pair}' in '{spec}'.", "write it as task:key=value")
        key, value = pair.split("=", 1)
        params[key] = int(value) if value.lstrip("-").isdigit() else value
    return name, params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalsuite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="score a model on tasks")
    run.add_argument("--model", default="default", help="HF folder, Hub id, .gguf file, or 'default' (SmolLM2-135M)")
    run.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated; parameters as task:key=value")
    run.add_argument("--data-dir", default=None, help="datasets folder (default: $EVALSUITE_DATA, else Hub, else sample)")
    run.add_argument("--output", default=None, help="run record folder (default: runs/<model>-<time>)")
    run.add_argument("--limit", type=int, default=None, help="first N documents of each task")
    run.add_argument("--batch-size", default="16", help="sequences per forward pass, or 'auto'")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    run.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    run.add_argument("--max-length", type=int, default=None, help="model window in tokens (default: the model's)")
    run.add_argument("--seed", type=int, default=1234)
    run.add_argument("--cache", default=None, help="SQLite response cache (default: in the evalsuite home)")
    run.add_argument("--toxicity-scorer", default="bilstm", help="bilstm (offline), detoxify, perspective or auto")
    run.add_argument("--judge", default="minilm", help="judge for judged metrics: 'minilm' (offline) or a model")
    run.add_argument("--chat-template", default="auto", help="wrap instruction prompts in the chat template: auto|on|off")
    run.add_argument("--trust-remote-code", action="store_true", help="allow code shipped with a Hub model to run")
    sub.add_parser("tasks", help="list the registered tasks")
    return parser


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cmd_tasks(_args) -> int:
    from evalsuite.registry import get_task, task_names

    rows = [("task", "primary metric", "data")]
    rows += [(name, (t := get_task(name)).primary_metric, t.data) for name in task_names()]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for name, metric, data in rows:
        print(f"{name:<{widths[0]}}  {metric:<{widths[1]}}  {data}")
    return 0


def cmd_run(args) -> int:
    from evalsuite.cache import RequestCache
    from evalsuite.models.hf import HFModel
    from evalsuite.paths import home
    from evalsuite.registry import get_task
    from evalsuite.results import build_record, check_writable, write_run
    from evalsuite.runner import distributed_state, evaluate
    from evalsuite.scorers.scorer_set import ScorerSet

    started = time.perf_counter()
    specs = [parse_task_spec(s) for s in args.tasks.split(",") if s.strip()]
    tasks = [get_task(name, **params) for name, params in specs]  # unknown names fail before loading a model
    rank, world, state = distributed_state()
    name = Path(args.model.rstrip("/")).name.removesuffix(".gguf") or "model"
    output = Path(args.output or f"runs/{name}-{datetime.now():%Y%m%d-%H%M%S}")
    if rank == 0:
        check_writable(output)
    seed_everything(args.seed)
    device = args.device
    if state is not None and state.device.type == "cuda" and args.device in ("auto", "cuda"):
        device = str(state.device)  # one GPU per process
    model = HFModel(
        args.model, device=device, dtype=args.dtype, batch_size=args.batch_size, max_length=args.max_length,
        trust_remote_code=args.trust_remote_code, chat_template=args.chat_template,
    )
    loaded = time.perf_counter()
    cache = RequestCache(Path(args.cache) if args.cache else home() / "cache.sqlite")
    scorers = ScorerSet(toxicity=args.toxicity_scorer, judge=args.judge, device=device)
    results, stats = evaluate(model, tasks, args.data_dir, args.limit, cache, scorers)
    if rank != 0:
        return 0
    config = {k: v for k, v in vars(args).items() if k != "command"} | {
        "batch_size": model.batch_size, "processes": world, "data_dir": args.data_dir or os.environ.get("EVALSUITE_DATA"),
    }
    timings = {"total_seconds": round(time.perf_counter() - started, 3), "model_load_seconds": round(loaded - started, 3)}
    record = build_record(config, model.describe() | {"truncated_prompts": model.truncated_prompts}, results, stats,
                          timings, scorers.describe())
    write_run(output, record, results)
    print_summary(record)
    print(f"\nrun record: {output}/results.json ({stats.computed} requests computed, {stats.from_cache} from cache)")
    return 0


def print_summary(record: dict) -> None:
    rows = [("task", "metric", "value", "± stderr", "n", "seconds")]
    for task_name, task in record["tasks"].items():
        for metric, value in task["metrics"].items():
            if "/" in metric:  # breakdowns stay in results.json; the table shows headline numbers
                continue
            se = task["stderr"].get(metric)
            rows.append((task_name, metric, f"{value:.4f}", f"{se:.4f}" if se is not None else "-", str(task["n"]),
                         f"{task['seconds']:.1f}"))
            task_name = ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if j < 2 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return cmd_tasks(args) if args.command == "tasks" else cmd_run(args)
    except EvalsuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every finished request is cached; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno == errno.ENOSPC:
            print("error: the disk is full. Fix: free space and run the same command again to resume", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
