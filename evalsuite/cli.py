"""The ``evalsuite`` command: ``run`` scores a checkpoint on tasks; ``tasks`` lists them. The
trainer (``train``) and the reports (``compare``, ``tax``, ``report``) are loaded only when asked
for, so the harness core never imports them.

A request's path: ``main`` -> ``cmd_run`` builds the tasks (``registry``) and loads their data
(``runner.prepare``), checks the output and cache, loads the model (``models.hf``),
``runner.evaluate_prepared`` merges and caches requests and calls the model, and
``results.write_run`` writes the run record.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path

from evalsuite.errors import EvalsuiteError

DEFAULT_TASKS = "truthfulqa_mc1,truthfulqa_mc2,crows_pairs,winogender,wikitext"
# Subcommands that live outside the core: (module with ``main(argv) -> int``, help line).
EXTERNAL = {
    "train": ("evalsuite.trainers.cli", "train a checkpoint: sft, rm or ppo (PPO-ptx with --ptx-coef)"),
    "compare": ("evalsuite.reports.compare", "pairwise win rate of models against a baseline, with a judge"),
    "tax": ("evalsuite.reports.tax", "the alignment-tax table: checkpoints against their base, paired"),
    "report": ("evalsuite.reports.report", "a self-contained HTML report of runs, comparisons and the tax table"),
}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def batch_size_arg(text: str) -> int | str:
    return "auto" if text == "auto" else positive_int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalsuite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="score a model on tasks")
    add = run.add_argument
    add("--model", default="default", help="HF folder, Hub id, .gguf file, or 'default' (SmolLM2-135M)")
    add("--tasks", default=DEFAULT_TASKS, help="comma-separated; parameters as task:key=value")
    add("--data-dir", default=None, help="datasets folder (default: $EVALSUITE_DATA, else Hub, else sample)")
    add("--output", default=None, help="run record folder (default: runs/<model>-<time>)")
    add("--overwrite", action="store_true", help="replace a run record already in --output")
    add("--limit", type=positive_int, default=None, help="first N documents of each task")
    add("--batch-size", type=batch_size_arg, default=16, help="sequences per forward pass, or 'auto'")
    add("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    add("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    add("--max-length", type=positive_int, default=None, help="model window in tokens (default: the model's)")
    add("--seed", type=int, default=1234)
    add("--cache", default=None, help="SQLite response cache (default: in the evalsuite home)")
    add("--toxicity-scorer", default="bilstm", help="bilstm (offline), detoxify, perspective or auto")
    add("--judge", default="minilm", help="judge for judged metrics: 'minilm' (offline) or a model")
    add("--chat-template", default="auto", help="wrap instruction prompts in the chat template: auto|on|off")
    add("--trust-remote-code", action="store_true", help="allow code shipped with a Hub model to run")
    sub.add_parser("tasks", help="list the registered tasks")
    for name, (_, help_line) in EXTERNAL.items():
        sub.add_parser(name, help=help_line, add_help=False)
    return parser


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cmd_tasks(_args) -> int:
    from evalsuite.registry import get_task, task_names

    rows = [("task", "group", "primary metric", "data")]
    rows += [(name, (t := get_task(name)).group, t.primary_metric, t.data) for name in task_names()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for name, group, metric, data in rows:
        print(f"{name:<{widths[0]}}  {group:<{widths[1]}}  {metric:<{widths[2]}}  {data}")
    return 0


def cmd_run(args) -> int:
    from evalsuite.cache import RequestCache, check_cache_path
    from evalsuite.paths import home
    from evalsuite.registry import build_tasks
    from evalsuite.results import check_output
    from evalsuite.runner import distributed_state, prepare

    started = time.perf_counter()
    # Everything that can be checked without the model is checked first: on a 7B checkpoint a late
    # error costs minutes. Tasks and parameters, then every task's data, then output and cache.
    prepared = prepare(build_tasks(args.tasks), args.data_dir, args.limit)
    rank, world, state = distributed_state()
    name = Path(args.model.rstrip("/")).name.removesuffix(".gguf") or "model"
    output = Path(args.output or f"runs/{name}-{datetime.now():%Y%m%d-%H%M%S}")
    if rank == 0:
        check_output(output, args.overwrite)
    cache_path = Path(args.cache).expanduser() if args.cache else home() / "cache.sqlite"
    check_cache_path(cache_path)
    cache = RequestCache(cache_path)
    try:
        return _evaluate(args, prepared, cache, output, started)
    finally:
        cache.close()


def _evaluate(args, prepared, cache, output: Path, started: float) -> int:
    """Load the model and scorers, answer every request, write the run record (rank 0)."""
    from evalsuite.models.hf import HFModel
    from evalsuite.results import build_record, write_run
    from evalsuite.runner import distributed_state, evaluate_prepared
    from evalsuite.scorers.scorer_set import ScorerSet

    rank, world, state = distributed_state()
    seed_everything(args.seed)
    device = args.device
    if state is not None and state.device.type == "cuda" and args.device in ("auto", "cuda"):
        device = str(state.device)  # one GPU per process
    model = HFModel(
        args.model, device=device, dtype=args.dtype, batch_size=args.batch_size, max_length=args.max_length,
        trust_remote_code=args.trust_remote_code, chat_template=args.chat_template,
    )
    loaded = time.perf_counter()
    scorers = ScorerSet(toxicity=args.toxicity_scorer, judge=args.judge, device=device)
    results, stats = evaluate_prepared(model, prepared, cache, scorers)
    if rank != 0:
        return 0
    config = {k: v for k, v in vars(args).items() if k != "command"} | {
        "batch_size": model.batch_size, "processes": world,
        "data_dir": args.data_dir or os.environ.get("EVALSUITE_DATA"),
    }
    timings = {"total_seconds": round(time.perf_counter() - started, 3),
               "model_load_seconds": round(loaded - started, 3)}
    model_info = model.describe() | {"truncated_prompts": model.truncated_prompts}
    record = build_record(config, model_info, results, stats, timings, scorers.describe())
    write_run(output, record, results)
    print_summary(record)
    print(f"\nrun record: {output}/results.json ({stats.computed} requests computed, {stats.from_cache} from cache)")
    return 0


def direction(task: dict, metric: str) -> str:
    """How to read a metric: higher better, lower better, or best at an ideal value."""
    if metric in task.get("ideal", {}):
        return f"ideal {task['ideal'][metric]:g}"
    better = task.get("higher_is_better", {}).get(metric)
    return "" if better is None else ("higher" if better else "lower")


def print_summary(record: dict) -> None:
    rows = [("task", "metric", "better", "value", "± stderr", "n", "seconds")]
    for task_name, task in record["tasks"].items():
        first = True
        for metric, value in task["metrics"].items():
            if "/" in metric:  # breakdowns stay in results.json; the table shows headline numbers
                continue
            se = task["stderr"].get(metric)
            rows.append((task_name if first else "", metric, direction(task, metric), f"{value:.4f}",
                         f"{se:.4f}" if se is not None else "-", str(task["n"]) if first else "",
                         f"{task['seconds']:.1f}" if first else ""))
            first = False
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if j < 3 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in EXTERNAL:
            return importlib.import_module(EXTERNAL[argv[0]][0]).main(argv)
        args = build_parser().parse_args(argv)
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
