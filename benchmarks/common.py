"""What the benchmark scripts share: running a harness as a measured child process, the commands
of both harnesses, temporary folders, lm-eval task YAMLs, machine/version facts and tables.

Used by ``bench_likelihood.py`` and ``bench_generation.py`` (run as scripts from this folder, which
puts this module on ``sys.path``).
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HARNESSES = ("evalsuite", "lm-eval")

# ------------------------------------------------------------------------------------------------
# Model, data and temporary folders
# ------------------------------------------------------------------------------------------------


def benchmark_parser(doc: str) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark takes; each script adds its own workload options."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("EVALSUITE_DATA"),
                   help="evalsuite data folder (default: $EVALSUITE_DATA)")
    p.add_argument("--model", default=None, help="HF model folder (default: evalsuite's embedded SmolLM2-135M)")
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
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs, outputs, YAMLs)")
    p.add_argument("--live", action="store_true", help="show the harnesses' own output instead of logging it")
    return p


def comma_list(p: argparse.ArgumentParser, value: str, allowed, what: str) -> list[str]:
    """``a,b`` as a list, every item one of ``allowed`` (else the parser's own error)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown:
        p.error(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return items


def start_report(name: str, args, model_dir: Path, max_length: int, **config) -> dict:
    """The report skeleton: what ran, on what, with which settings."""
    return {
        "benchmark": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {"model_name": model_dir.name, "batch_size": args.batch_size, "device": args.device,
                   "dtype": args.dtype, "max_length": max_length, "threads": args.threads, "order": args.order,
                   **config},
        "versions": versions(),
        "machine": machine(),
    }


def prepare_model(args) -> tuple[Path, int]:
    """The model folder and window both harnesses get, its weights read once (see ``warm_page_cache``)."""
    if args.data_dir is None:
        print("note: no --data-dir / EVALSUITE_DATA: evalsuite's loaders fall back to the Hub or built-in samples",
              file=sys.stderr)
    model_dir, max_length = resolve_model(args.model, args.max_length)
    warm_page_cache(model_dir)
    return model_dir, max_length


def harness_order(args) -> list[str]:
    if args.harness != "both":
        return [args.harness]
    return list(HARNESSES) if args.order == "evalsuite-first" else list(reversed(HARNESSES))


def resolve_model(model: str | None, max_length: int | None) -> tuple[Path, int]:
    """The model folder (``--model``, else evalsuite's embedded SmolLM2-135M) and the window length
    both harnesses get (``--max-length``, else the model's ``max_position_embeddings``)."""
    if model:
        model_dir = Path(model).expanduser().resolve()
    else:
        from evalsuite.models.default import default_model_dir

        model_dir = Path(default_model_dir())
    config = json.loads((model_dir / "config.json").read_text())
    return model_dir, max_length or config.get("max_position_embeddings") or 2048


def warm_page_cache(model_dir: Path) -> None:
    """Read the weights once so that neither harness pays for the first cold read from disk."""
    for path in model_dir.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass


def make_tmp_root(prefix: str = "evalsuite-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def finish_tmp_root(tmp_root: Path, keep: bool) -> None:
    """Keep the temporary folder (and say where) or remove it."""
    if keep:
        print(f"temporary files kept in {tmp_root}", file=sys.stderr)
    else:
        shutil.rmtree(tmp_root, ignore_errors=True)


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def read_jsonl(path: Path) -> list[dict]:
    # split("\n"), not splitlines(): JSON strings may hold U+2028, which splitlines() would cut at.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


# ------------------------------------------------------------------------------------------------
# lm-eval task YAMLs
# ------------------------------------------------------------------------------------------------


class Function(str):
    """A YAML ``!function module.name`` reference, kept as text."""


class _FunctionLoader(yaml.SafeLoader):
    pass


class _FunctionDumper(yaml.SafeDumper):
    pass


_FunctionLoader.add_constructor("!function", lambda loader, node: Function(loader.construct_scalar(node)))
_FunctionDumper.add_representer(Function, lambda dumper, data: dumper.represent_scalar("!function", str(data)))


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


def write_lm_yaml(path: Path, config: dict) -> None:
    """A task YAML lm-eval can read (``Function`` values become ``!function`` tags)."""
    text = yaml.dump(config, Dumper=_FunctionDumper, sort_keys=False, allow_unicode=True, width=10_000)
    path.write_text(text, encoding="utf-8")


def jsonl_dataset(jsonl: Path) -> dict:
    """lm-eval task fields that read documents from a local JSON Lines file (its ``test`` split)."""
    return {"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(jsonl)}}, "test_split": "test"}


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

    def as_dict(self) -> dict:
        return {"returncode": self.returncode, "wall_s": round(self.wall_s, 3), "user_s": round(self.user_s, 3),
                "sys_s": round(self.sys_s, 3), "peak_rss_mib": round(self.peak_rss_mib, 1),
                "own_timings": self.own_timings, "load_avg_before": round(self.load_avg_before, 2)}


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


def report_run(label: str, harness: str, m: Measured, ok: bool, live: bool) -> bool:
    """Print one run's outcome to stderr (and its log tail when it failed); returns ``ok``."""
    status = "ok" if ok else f"FAILED (exit {m.returncode})"
    print(f"[{label}] {harness}: {status}, {m.wall_s:.1f} s, peak RSS {m.peak_rss_mib:.0f} MiB",
          file=sys.stderr, flush=True)
    if not ok and not live:
        tail = Path(m.log).read_text(encoding="utf-8", errors="replace")[-4000:]
        print(f"--- last lines of {harness}'s log ---\n{tail}", file=sys.stderr)
    return ok


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


def evalsuite_command(model_dir: Path, tasks: list[str], out: Path, cache: Path, *, batch_size: int, device: str,
                      dtype: str, max_length: int, data_dir: str | None, limit: int | None,
                      extra: Iterable[str] = ()) -> list[str]:
    """``python -m evalsuite run ...`` with a fresh (empty) cache file, so every request is computed."""
    cmd = [
        sys.executable, "-m", "evalsuite", "run",
        "--model", str(model_dir), "--tasks", ",".join(tasks), "--output", str(out),
        "--batch-size", str(batch_size), "--device", device, "--dtype", dtype,
        "--max-length", str(max_length),
        "--cache", str(cache),
    ]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if limit:
        cmd += ["--limit", str(limit)]
    return cmd + list(extra)


def lm_eval_command(model_dir: Path, lm_tasks: list[str], include_path: Path, out: Path, *, batch_size: int,
                    device: str, dtype: str, max_length: int, limit: int | None, log_samples: bool) -> list[str]:
    """``python -m lm_eval run`` with the ``hf`` backend on task YAMLs from ``include_path``."""
    model_args = f"pretrained={model_dir},dtype={dtype},max_length={max_length}"
    cmd = [
        sys.executable, "-m", "lm_eval", "run",
        "--model", "hf", "--model_args", model_args,
        "--tasks", ",".join(lm_tasks),
        "--include_path", str(include_path),
        "--batch_size", str(batch_size), "--device", device,
        "--output_path", str(out),
    ]
    if limit:
        cmd += ["--limit", str(limit)]
    if log_samples:
        cmd += ["--log_samples"]
    return cmd


def evalsuite_record(out: Path) -> dict | None:
    path = out / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def evalsuite_own_timings(record: dict) -> dict:
    timings = record.get("timings", {})
    return {
        "total_s": timings.get("total_seconds"),
        "model_load_s": timings.get("model_load_seconds"),
        "model_s": timings.get("model_seconds"),
    }


def lm_eval_record(out: Path) -> dict | None:
    """The newest ``results_*.json`` lm-eval wrote under ``out``."""
    found = sorted(out.rglob("results_*.json")) if out.exists() else []
    return json.loads(found[-1].read_text()) if found else None


def lm_eval_own_timings(record: dict) -> dict:
    total = record.get("total_evaluation_time_seconds")
    return {"total_s": float(total) if total is not None else None}


def lm_eval_samples(out: Path, lm_task: str) -> list[dict] | None:
    """lm-eval's ``--log_samples`` records of one task, in document order."""
    found = sorted(out.rglob(f"samples_{lm_task}_*.jsonl")) if out.exists() else []
    if not found:
        return None
    return sorted(read_jsonl(found[-1]), key=lambda r: r["doc_id"])


def first_number(value) -> float:
    while isinstance(value, (list, tuple)):
        value = value[0]
    return float(value)  # lm-eval logs numbers as strings


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


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()}


def fmt_num(value, digits=4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def text_table(rows: list[list[str]], text_cols: int) -> str:
    """Plain-text table; the first ``text_cols`` columns are left-aligned, the numbers right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = (c.ljust(w) if j < text_cols else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths)))
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]], text_cols: int) -> str:
    align = ["---" if i < text_cols else "---:" for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)
