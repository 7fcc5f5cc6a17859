#!/usr/bin/env python
"""Speed, memory and accuracy of evalsuite against lm-evaluation-harness on the likelihood tasks.

Both harnesses score the same model, on the same device, with the same batch size, window length
and thread count, one after the other, on the *same documents*: evalsuite's own loaders read the
data folder, the documents are written to temporary JSON Lines files, and lm-eval reads those
through task YAMLs generated from lm-eval's own task definitions (prompts, choices, metrics), with
only the dataset fields replaced. Nothing comes from the Hugging Face Hub.

Each task group is a separate timed run of each harness (a fresh process, model loading included).
Wall time, CPU time and peak RSS come from ``os.wait4`` on the child process. The harnesses' own
timings are reported beside them where they record one.

    python benchmarks/bench_likelihood.py --data-dir DATA --limit 10 --json out.json --markdown out.md

See benchmarks/README.md for the environment this needs (lm-eval and evalsuite in one venv).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# ------------------------------------------------------------------------------------------------
# What is compared
# ------------------------------------------------------------------------------------------------

# lm-eval task YAML (relative to lm_eval/tasks) for each evalsuite task, and the metrics compared:
# (evalsuite metric, lm-eval metric). lm-eval's results key is "<metric>,none".
TASKS = {
    "truthfulqa_mc1": ("truthfulqa/truthfulqa_mc1.yaml", [("acc", "acc")]),
    "truthfulqa_mc2": ("truthfulqa/truthfulqa_mc2.yaml", [("acc", "acc")]),
    "crows_pairs": (
        "crows_pairs/crows_pairs_english.yaml",
        [("pct_stereotype", "pct_stereotype"), ("likelihood_diff", "likelihood_diff")],
    ),
    "winogender": ("winogender/winogender.yaml", [("acc", "acc")]),
    "wikitext": (
        "wikitext/wikitext.yaml",
        [("word_perplexity", "word_perplexity"), ("byte_perplexity", "byte_perplexity"),
         ("bits_per_byte", "bits_per_byte")],
    ),
}
GROUPS = {
    "truthfulqa": ["truthfulqa_mc1", "truthfulqa_mc2"],
    "bias": ["crows_pairs", "winogender"],
    "wikitext": ["wikitext"],  # slow: only with --wikitext
}
LM_PREFIX = "es_"  # generated lm-eval task names, so they never clash with lm-eval's built-in ones
HARNESSES = ("evalsuite", "lm-eval")


# ------------------------------------------------------------------------------------------------
# Data: evalsuite's loaders -> JSONL files -> lm-eval task YAMLs that read them
# ------------------------------------------------------------------------------------------------


def write_jsonl(task: str, data_dir: str | None, folder: Path) -> tuple[Path, int]:
    from evalsuite.registry import get_task

    dataset = get_task(task).load(data_dir)
    path = folder / f"{task}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(doc, ensure_ascii=False) + "\n" for doc in dataset.docs)
    return path, len(dataset.docs)


class _Function(str):
    """A YAML ``!function module.name`` reference, kept as text."""


class _FunctionLoader(yaml.SafeLoader):
    pass


class _FunctionDumper(yaml.SafeDumper):
    pass


_FunctionLoader.add_constructor("!function", lambda loader, node: _Function(loader.construct_scalar(node)))
_FunctionDumper.add_representer(_Function, lambda dumper, data: dumper.represent_scalar("!function", str(data)))


def lm_eval_tasks_dir() -> Path:
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        sys.exit("error: lm-eval is not installed in this Python (see benchmarks/README.md)")
    return Path(spec.origin).parent / "tasks"


def read_lm_yaml(path: Path) -> dict:
    """One of lm-eval's task YAMLs, with its ``include`` resolved (the including file wins)."""
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=_FunctionLoader)
    include = config.pop("include", None)
    if include:
        base = read_lm_yaml(path.parent / include)
        base.update(config)
        config = base
    return config


def lm_task_config(task: str, jsonl: Path, imports: list[str]) -> dict:
    """lm-eval's own definition of ``task`` with the dataset swapped for our JSONL file.

    ``!function utils.f`` references (relative to lm-eval's task folder) are pointed at a module in
    the temporary folder that re-exports lm-eval's function; ``imports`` collects its lines.
    """
    relpath, _ = TASKS[task]
    source = lm_eval_tasks_dir() / relpath
    config = read_lm_yaml(source)
    package = "lm_eval.tasks." + str(Path(relpath).parent).replace("/", ".")
    for key, value in list(config.items()):
        if isinstance(value, _Function):
            module, _, name = value.rpartition(".")
            alias = f"{task}__{name}"
            imports.append(f"from {package}.{module} import {name} as {alias}")
            config[key] = _Function(f"es_lm_utils.{alias}")
    for key in ("tag", "group", "dataset_name", "training_split", "validation_split", "fewshot_split"):
        config.pop(key, None)
    config.update(
        task=LM_PREFIX + task,
        dataset_path="json",
        dataset_kwargs={"data_files": {"test": str(jsonl)}},
        test_split="test",
    )
    return config


def write_lm_tasks(tasks: list[str], jsonl: dict[str, Path], folder: Path) -> None:
    imports: list[str] = []
    for task in tasks:
        config = lm_task_config(task, jsonl[task], imports)
        text = yaml.dump(config, Dumper=_FunctionDumper, sort_keys=False, allow_unicode=True, width=10_000)
        (folder / f"{LM_PREFIX}{task}.yaml").write_text(text, encoding="utf-8")
    header = '"""Generated by bench_likelihood.py: lm-eval\'s own task functions, re-exported."""\n'
    (folder / "es_lm_utils.py").write_text(header + "\n".join(imports) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# Running one harness and measuring it
# ------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    returncode: int = -1
    wall_s: float = float("nan")
    user_s: float = float("nan")
    sys_s: float = float("nan")
    peak_rss_mib: float = float("nan")
    own_timings: dict = field(default_factory=dict)
    load_avg_before: float = float("nan")  # 1-minute load average at the start: is the machine busy?
    metrics: dict = field(default_factory=dict)  # task -> evalsuite metric name -> value
    log: str = ""


def measure(cmd: list[str], env: dict, log_path: Path, live: bool) -> Measured:
    """Run ``cmd`` to the end; wall time, CPU time and peak RSS of that process (``wait4``)."""
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        out = None if live else log
        load = os.getloadavg()[0]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; tell Popen
    return Measured(
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        load_avg_before=load,
        log=str(log_path),
    )


def run_evalsuite(tasks, args, model_dir, max_length, workdir: Path, env) -> Measured:
    out = workdir / "evalsuite-out"
    cmd = [
        sys.executable, "-m", "evalsuite", "run",
        "--model", str(model_dir), "--tasks", ",".join(tasks), "--output", str(out),
        "--batch-size", str(args.batch_size), "--device", args.device, "--dtype", args.dtype,
        "--max-length", str(max_length),
        "--cache", str(workdir / "evalsuite-fresh-cache.sqlite"),  # empty: every request computed
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    result = measure(cmd, env, workdir / "evalsuite.log", args.live)
    record_path = out / "results.json"
    if result.returncode == 0 and record_path.is_file():
        record = json.loads(record_path.read_text())
        result.metrics = {t: dict(record["tasks"][t]["metrics"]) for t in tasks if t in record["tasks"]}
        timings = record.get("timings", {})
        result.own_timings = {
            "total_s": timings.get("total_seconds"),
            "model_load_s": timings.get("model_load_seconds"),
            "model_s": timings.get("model_seconds"),
        }
    return result


def run_lm_eval(tasks, args, model_dir, max_length, workdir: Path, env) -> Measured:
    out = workdir / "lm-eval-out"
    model_args = f"pretrained={model_dir},dtype={args.dtype},max_length={max_length}"
    cmd = [
        sys.executable, "-m", "lm_eval", "run",
        "--model", "hf", "--model_args", model_args,
        "--tasks", ",".join(LM_PREFIX + t for t in tasks),
        "--include_path", str(workdir / "lm_tasks"),
        "--batch_size", str(args.batch_size), "--device", args.device,
        "--output_path", str(out),
    ]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if args.log_samples:
        cmd += ["--log_samples"]
    result = measure(cmd, env, workdir / "lm-eval.log", args.live)
    found = sorted(out.rglob("results_*.json")) if out.exists() else []
    if result.returncode == 0 and found:
        record = json.loads(found[-1].read_text())
        for task in tasks:
            values = record.get("results", {}).get(LM_PREFIX + task, {})
            result.metrics[task] = {
                es_name: values.get(f"{lm_name},none") for es_name, lm_name in TASKS[task][1]
            }
        total = record.get("total_evaluation_time_seconds")
        result.own_timings = {"total_s": float(total) if total is not None else None}
    return result


def _first_number(value) -> float:
    while isinstance(value, (list, tuple)):
        value = value[0]
    return float(value)  # lm-eval logs numbers as strings


def compare_requests(task: str, workdir: Path) -> dict | None:
    """Request by request: are the texts the same, and how far apart are the log-likelihoods?

    Needs both harnesses' per-sample logs (evalsuite always writes them; lm-eval with --log-samples).
    Every lm-eval request (context, continuation) or (text,) is looked up among the evalsuite
    requests of the same document (evalsuite may ask more, e.g. Winogender's whole sentences).
    """
    es_path = workdir / "evalsuite-out" / "samples" / f"{task}.jsonl"
    lm_paths = sorted((workdir / "lm-eval-out").rglob(f"samples_{LM_PREFIX}{task}_*.jsonl"))
    if not es_path.is_file() or not lm_paths:
        return None
    es_docs = [json.loads(line) for line in es_path.read_text(encoding="utf-8").splitlines()]
    lm_docs = sorted((json.loads(line) for line in lm_paths[-1].read_text(encoding="utf-8").splitlines()),
                     key=lambda r: r["doc_id"])
    compared, missing, worst, worst_at = 0, 0, 0.0, None
    for es_doc, lm_doc in zip(es_docs, lm_docs):
        es_lp = {}
        for request, response in zip(es_doc["requests"], es_doc["responses"]):
            key = tuple(v for k, v in request.items() if k != "kind")
            es_lp[key] = _first_number(response)
        args = sorted(lm_doc["arguments"].items(), key=lambda kv: int(kv[0].rsplit("_", 1)[-1]))
        for (_, arg), response in zip(args, lm_doc["resps"]):
            key = tuple(arg[k] for k in sorted(arg, key=lambda k: int(k.rsplit("_", 1)[-1])))
            if key not in es_lp:
                missing += 1
                continue
            diff = abs(es_lp[key] - _first_number(response))
            compared += 1
            if diff > worst:
                worst, worst_at = diff, {"doc_id": lm_doc["doc_id"], "request": key}
    return {"docs": min(len(es_docs), len(lm_docs)), "requests_compared": compared,
            "lm_eval_requests_not_in_evalsuite": missing, "max_abs_logprob_diff": worst, "worst": worst_at}


def child_env(threads: int, workdir: Path) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.update(
        HF_HUB_OFFLINE="1",  # nothing from the Hub for either harness
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_CACHE=str(workdir / "hf-datasets-cache"),  # lm-eval's JSON->Arrow cache: fresh per run
        TOKENIZERS_PARALLELISM="false",
        PYTHONHASHSEED="0",
    )
    return env


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("evalsuite", "lm_eval", "torch", "transformers", "accelerate", "datasets", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _num(value, digits=4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def group_rows(report: dict) -> list[list[str]]:
    rows = [["group", "tasks", "evalsuite s", "lm-eval s", "speed ratio", "evalsuite MiB", "lm-eval MiB",
             "evalsuite own s (load+model)", "lm-eval own s"]]
    for g in report["groups"]:
        es, lm = g["evalsuite"] or {}, g["lm-eval"] or {}
        own = es.get("own_timings") or {}
        es_own = (f"{_num(own.get('total_s'), 1)} ({_num(own.get('model_load_s'), 1)}+{_num(own.get('model_s'), 1)})"
                  if own else "-")
        rows.append([
            g["group"], ",".join(g["tasks"]), _num(es.get("wall_s"), 1), _num(lm.get("wall_s"), 1),
            f"{g['speed_ratio']:.2f}x" if g.get("speed_ratio") else "-",
            _num(es.get("peak_rss_mib"), 0), _num(lm.get("peak_rss_mib"), 0),
            es_own, _num((lm.get("own_timings") or {}).get("total_s"), 1),
        ])
    return rows


def metric_rows(report: dict) -> list[list[str]]:
    rows = [["group", "task", "metric", "evalsuite", "lm-eval", "abs diff"]]
    for g in report["groups"]:
        for m in g["metrics"]:
            rows.append([g["group"], m["task"], m["metric"], _num(m["evalsuite"], 6), _num(m["lm-eval"], 6),
                         _num(m["abs_diff"], 6)])
    return rows


def text_table(rows: list[list[str]], text_cols: int) -> str:
    """Plain-text table; the first ``text_cols`` columns are left-aligned, the numbers right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j < text_cols else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]], text_cols: int) -> str:
    align = ["---" if i < text_cols else "---:" for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def setup_line(report: dict) -> str:
    c, v = report["config"], report["versions"]
    return (
        f"Model `{c['model_name']}` ({c['dtype']}), device {c['device']}, batch size {c['batch_size']}, "
        f"max length {c['max_length']}, {c['threads']} threads on {report['machine']['cpu']}; "
        f"limit {c['limit'] or 'none'} docs per task. evalsuite {v['evalsuite']}, lm-eval {v['lm_eval']}, "
        f"torch {v['torch']}, transformers {v['transformers']}. Seconds and peak RSS are of the whole process "
        f"(model loading included); speed ratio = lm-eval seconds / evalsuite seconds."
    )


def write_markdown(path: Path, report: dict) -> None:
    text = (
        "### Speed and memory\n\n" + markdown_table(group_rows(report), 2) + "\n\n"
        "### Metrics\n\n" + markdown_table(metric_rows(report), 3) + "\n\n" + setup_line(report) + "\n"
    )
    path.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("EVALSUITE_DATA"),
                   help="evalsuite data folder (default: $EVALSUITE_DATA)")
    p.add_argument("--model", default=None, help="HF model folder (default: evalsuite's embedded SmolLM2-135M)")
    p.add_argument("--groups", default="truthfulqa,bias", help="comma-separated: truthfulqa, bias, wikitext")
    p.add_argument("--wikitext", action="store_true", help="add the (slow) wikitext group")
    p.add_argument("--limit", type=int, default=None, help="first N documents of each task (both harnesses)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-length", type=int, default=None,
                   help="model window for both (default: the model's max_position_embeddings)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="OMP/MKL threads for both (default: all cores this process may use)")
    p.add_argument("--harness", choices=("both", *HARNESSES), default="both", help="run only one side")
    p.add_argument("--order", choices=("evalsuite-first", "lm-eval-first"), default="evalsuite-first")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, default=None, help="write the tables as Markdown here")
    p.add_argument("--tolerance", type=float, default=1e-3, help="flag metric differences above this")
    p.add_argument("--log-samples", action="store_true",
                   help="lm-eval --log_samples, and compare both harnesses request by request (texts, log-likelihoods)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs, outputs, YAMLs)")
    p.add_argument("--live", action="store_true", help="show the harnesses' own output instead of logging it")
    args = p.parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    if args.wikitext and "wikitext" not in groups:
        groups.append("wikitext")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        p.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    args.groups = groups
    return args


def warm_page_cache(model_dir: Path) -> None:
    """Read the weights once so that neither harness pays for the first cold read from disk."""
    for path in model_dir.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.data_dir is None:
        print("note: no --data-dir / EVALSUITE_DATA: evalsuite's loaders fall back to the Hub or built-in samples",
              file=sys.stderr)
    if args.model:
        model_dir = Path(args.model).expanduser().resolve()
    else:
        from evalsuite.models.default import default_model_dir

        model_dir = Path(default_model_dir())
    config = json.loads((model_dir / "config.json").read_text())
    max_length = args.max_length or config.get("max_position_embeddings") or 2048
    warm_page_cache(model_dir)

    tmp_root = Path(tempfile.mkdtemp(prefix="evalsuite-bench-"))
    report = {
        "benchmark": "bench_likelihood",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "model_name": model_dir.name, "limit": args.limit, "batch_size": args.batch_size, "device": args.device,
            "dtype": args.dtype, "max_length": max_length, "threads": args.threads, "order": args.order,
            "groups": args.groups,
        },
        "versions": versions(),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
        "groups": [],
    }
    failed = False
    try:
        data = tmp_root / "data"
        data.mkdir()
        jsonl, n_docs = {}, {}
        for task in [t for g in args.groups for t in GROUPS[g]]:
            jsonl[task], n_docs[task] = write_jsonl(task, args.data_dir, data)
        report["config"]["docs_available"] = n_docs
        order = list(HARNESSES) if args.order == "evalsuite-first" else list(reversed(HARNESSES))
        if args.harness != "both":
            order = [args.harness]
        for group in args.groups:
            tasks = GROUPS[group]
            workdir = tmp_root / group
            (workdir / "lm_tasks").mkdir(parents=True)
            write_lm_tasks(tasks, jsonl, workdir / "lm_tasks")
            env = child_env(args.threads, workdir)
            measured: dict[str, Measured | None] = {h: None for h in HARNESSES}
            for harness in order:
                print(f"[{group}] running {harness} on {','.join(tasks)} ...", file=sys.stderr, flush=True)
                runner = run_evalsuite if harness == "evalsuite" else run_lm_eval
                m = runner(tasks, args, model_dir, max_length, workdir, env)
                measured[harness] = m
                status = "ok" if m.returncode == 0 and m.metrics else f"FAILED (exit {m.returncode})"
                print(f"[{group}] {harness}: {status}, {m.wall_s:.1f} s, peak RSS {m.peak_rss_mib:.0f} MiB",
                      file=sys.stderr, flush=True)
                if status != "ok":
                    failed = True
                    if not args.live:
                        tail = Path(m.log).read_text(encoding="utf-8", errors="replace")[-4000:]
                        print(f"--- last lines of {harness}'s log ---\n{tail}", file=sys.stderr)
            es, lm = measured["evalsuite"], measured["lm-eval"]
            metrics = []
            for task in tasks:
                for es_name, lm_name in TASKS[task][1]:
                    a = (es.metrics.get(task) or {}).get(es_name) if es else None
                    b = (lm.metrics.get(task) or {}).get(es_name) if lm else None
                    diff = abs(a - b) if a is not None and b is not None else None
                    metrics.append({"task": task, "metric": es_name, "lm_eval_metric": lm_name,
                                    "evalsuite": a, "lm-eval": b, "abs_diff": diff})
            per_request = {}
            if args.log_samples and es and lm:
                for task in tasks:
                    found = compare_requests(task, workdir)
                    if found:
                        per_request[task] = found
                        print(f"[{group}] {task}: {found['requests_compared']} requests compared, "
                              f"{found['lm_eval_requests_not_in_evalsuite']} with texts evalsuite did not ask, "
                              f"max |log-likelihood diff| {found['max_abs_logprob_diff']:.2e}",
                              file=sys.stderr, flush=True)
            ratio = lm.wall_s / es.wall_s if es and lm and es.returncode == 0 and lm.returncode == 0 else None

            def as_dict(m: Measured | None):
                if m is None:
                    return None
                return {"returncode": m.returncode, "wall_s": round(m.wall_s, 3), "user_s": round(m.user_s, 3),
                        "sys_s": round(m.sys_s, 3), "peak_rss_mib": round(m.peak_rss_mib, 1),
                        "own_timings": m.own_timings, "load_avg_before": round(m.load_avg_before, 2)}

            report["groups"].append({
                "group": group, "tasks": tasks, "evalsuite": as_dict(es), "lm-eval": as_dict(lm),
                "speed_ratio": round(ratio, 3) if ratio else None, "metrics": metrics,
                **({"per_request": per_request} if per_request else {}),
            })
    finally:
        if args.keep_tmp or failed:
            print(f"temporary files kept in {tmp_root}", file=sys.stderr)
        else:
            shutil.rmtree(tmp_root, ignore_errors=True)

    print()
    print(text_table(group_rows(report), 2))
    print()
    print(text_table(metric_rows(report), 3))
    print()
    print(setup_line(report))
    over = [m for g in report["groups"] for m in g["metrics"]
            if m["abs_diff"] is not None and m["abs_diff"] > args.tolerance]
    for m in over:
        print(f"warning: {m['task']} {m['metric']} differs by {m['abs_diff']:.6f} (> {args.tolerance})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.markdown:
        write_markdown(args.markdown, report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
