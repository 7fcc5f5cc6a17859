#!/usr/bin/env python
"""Speed, memory and scores of evalsuite against lm-evaluation-harness on the generation tasks.

SQuAD v2 and DROP run in both harnesses, on the same model, device, batch size, window length and
thread count, one after the other, doing the same work: lm-eval gets task YAMLs over JSON Lines
files holding the exact prompt of every evalsuite request (taken from the task's own ``requests``),
with the same stop sequence, token limit and greedy decoding; SQuAD v2 also asks both harnesses for
the log-likelihood of the no-answer continuation. lm-eval's generations (``--log_samples``) are
scored with evalsuite's own scoring code, so the scores are comparable, and the generations are
compared one by one. Tokens per second count the generated text of each harness with the model's
tokenizer. RealToxicityPrompts (sampling plus toxicity scoring) runs in evalsuite alone, for its
prompts and scored continuations per second.

Every run is a fresh process (model loading included); wall time, CPU time and peak RSS come from
``os.wait4`` on it.

    python benchmarks/bench_generation.py --data-dir DATA --limit 10 --json out.json --markdown out.md

See benchmarks/README.md for the environment this needs (lm-eval and evalsuite in one venv).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, however this file is started

from common import (  # noqa: E402
    HARNESSES,
    Measured,
    benchmark_parser,
    child_env,
    comma_list,
    evalsuite_command,
    evalsuite_own_timings,
    evalsuite_record,
    finish_tmp_root,
    first_number,
    fmt_num,
    harness_order,
    jsonl_dataset,
    lm_eval_command,
    lm_eval_own_timings,
    lm_eval_record,
    lm_eval_samples,
    make_tmp_root,
    markdown_table,
    measure,
    prepare_model,
    read_jsonl,
    report_run,
    start_report,
    text_table,
    write_jsonl,
    write_lm_yaml,
)

# ------------------------------------------------------------------------------------------------
# What is compared
# ------------------------------------------------------------------------------------------------

# evalsuite task -> lm-eval task doing its generations, lm-eval task doing its no-answer
# log-likelihoods (None: the task has none), metrics shown in the tables (all go to the JSON).
COMPARED = {
    "squad_v2": ("es_squad_gen", "es_squad_na", ["exact", "f1", "best_exact", "best_f1"]),
    "drop": ("es_drop_gen", None, ["em", "f1"]),
}
RTP = "realtoxicityprompts"
ALL_TASKS = (*COMPARED, RTP)

# ------------------------------------------------------------------------------------------------
# Data: the task's own requests -> JSONL of prompts -> lm-eval task YAMLs doing the same requests
# ------------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """One evalsuite task's documents, and what lm-eval is asked to do with them."""

    task: object  # evalsuite.task.Task
    docs: list[dict]
    jsonl: Path
    stop: tuple[str, ...]
    max_tokens: int
    na_continuation: str | None  # continuation of the second (log-likelihood) request, if any


def _target(doc: dict) -> str:
    """A gold answer as one string: only lm-eval's own (unused) metric reads it."""
    golds = doc.get("answers") or doc.get("golds") or [""]
    first = golds[0]
    return first if isinstance(first, str) else " ".join(first)


def prepare_task(name: str, data_dir: str | None, folder: Path) -> TaskData:
    """evalsuite's documents and requests for ``name``; one JSONL row per document with the exact
    prompt of its ``Generate`` request. Checks that every document asks the same kind of work
    (one greedy single-sample generation with one stop set and token limit, and at most one
    log-likelihood of a fixed continuation after the same prompt), which the YAMLs then encode."""
    from evalsuite.registry import get_task
    from evalsuite.requests import Generate, Loglikelihood

    task = get_task(name)
    docs = task.load(data_dir).docs
    rows, settings, continuations = [], set(), set()
    for doc in docs:
        reqs = task.requests(doc)
        gens = [r for r in reqs if isinstance(r, Generate)]
        lls = [r for r in reqs if isinstance(r, Loglikelihood)]
        if len(gens) != 1 or len(lls) > 1 or len(gens) + len(lls) != len(reqs):
            sys.exit(f"error: {name}: expected one Generate and at most one Loglikelihood per document, got {reqs}")
        gen = gens[0]
        if gen.temperature != 0 or gen.n != 1 or gen.chat:
            sys.exit(f"error: {name}: the benchmark expects greedy, single-sample, non-chat generation ({gen})")
        settings.add((gen.stop, gen.max_tokens))
        if lls:
            if lls[0].context != gen.context:
                sys.exit(f"error: {name}: the log-likelihood request has another context than the generation")
            continuations.add(lls[0].continuation)
        rows.append({"id": doc["id"], "prompt": gen.context, "target": _target(doc)})
    if len(settings) != 1 or len(continuations) > 1:
        sys.exit(f"error: {name}: documents differ in stop/max_tokens {settings} or continuation {continuations}")
    (stop, max_tokens), = settings
    path = write_jsonl(folder / f"{name}.jsonl", rows)
    return TaskData(task, docs, path, stop, max_tokens, next(iter(continuations), None))


def write_lm_tasks(name: str, data: TaskData, folder: Path) -> list[str]:
    """The lm-eval YAMLs for one evalsuite task; returns their task names."""
    gen_task, na_task, _ = COMPARED[name]
    shared = {**jsonl_dataset(data.jsonl), "doc_to_text": "{{prompt}}", "num_fewshot": 0, "metadata": {"version": 1}}
    write_lm_yaml(folder / f"{gen_task}.yaml", {
        "task": gen_task, **shared,
        "output_type": "generate_until",
        "doc_to_target": "target",  # lm-eval's own exact_match is not used; evalsuite's scoring is
        "generation_kwargs": {"until": list(data.stop), "max_gen_toks": data.max_tokens, "do_sample": False},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    })
    tasks = [gen_task]
    if na_task and data.na_continuation is not None:
        write_lm_yaml(folder / f"{na_task}.yaml", {
            "task": na_task, **shared,
            "output_type": "loglikelihood",
            "doc_to_target": data.na_continuation,  # " unanswerable": the request's continuation, as is
            "target_delimiter": "",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        })
        tasks.append(na_task)
    return tasks


# ------------------------------------------------------------------------------------------------
# Outputs of both harnesses, scored with evalsuite's code
# ------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One harness on one task: its measurement, generations and scores."""

    measured: Measured
    generations: list[str] = field(default_factory=list)  # per document, in document order
    prompts: list[str] = field(default_factory=list)
    na_logprobs: list[float] = field(default_factory=list)
    na_continuations: list[str] = field(default_factory=list)  # the texts whose log-likelihood was asked
    generated_tokens: int | None = None
    own_metrics: dict = field(default_factory=dict)  # evalsuite: results.json
    scored_metrics: dict = field(default_factory=dict)  # evalsuite's score/aggregate on these generations


def _generation_index(requests: list[dict]) -> int:
    return next(i for i, r in enumerate(requests) if r["kind"] == "Generate")


def read_evalsuite(outcome: Outcome, out: Path, name: str) -> None:
    record = evalsuite_record(out)
    if record is None:
        return
    outcome.own_metrics = dict(record["tasks"][name]["metrics"])
    outcome.measured.own_timings = evalsuite_own_timings(record)
    for sample in read_jsonl(out / "samples" / f"{name}.jsonl"):
        g = _generation_index(sample["requests"])
        outcome.prompts.append(sample["requests"][g]["context"])
        outcome.generations.append(sample["responses"][g][0])
        lls = [i for i, r in enumerate(sample["requests"]) if r["kind"] == "Loglikelihood"]
        if lls:
            outcome.na_logprobs.append(first_number(sample["responses"][lls[0]]))
            request = sample["requests"][lls[0]]
            outcome.na_continuations.append(f"{request['context']}\x00{request['continuation']}")


def read_lm_eval(outcome: Outcome, out: Path, name: str) -> None:
    record = lm_eval_record(out)
    if record is None:
        return
    outcome.measured.own_timings = lm_eval_own_timings(record)
    gen_task, na_task, _ = COMPARED[name]
    for sample in lm_eval_samples(out, gen_task) or []:
        outcome.prompts.append(sample["arguments"]["gen_args_0"]["arg_0"])
        filtered = sample["filtered_resps"]
        outcome.generations.append(filtered[0] if isinstance(filtered, list) else filtered)
    if na_task:
        for sample in lm_eval_samples(out, na_task) or []:
            outcome.na_logprobs.append(first_number(sample["resps"]))
            args = sample["arguments"]["gen_args_0"]
            outcome.na_continuations.append(f"{args['arg_0']}\x00{args['arg_1']}")


def score_with_evalsuite(data: TaskData, outcome: Outcome) -> dict:
    """evalsuite's own ``score`` and ``aggregate`` of the task on this harness's outputs (for SQuAD v2
    that is the official EM/F1 after the task's abstention mapping, with the no-answer probability from
    this harness's log-likelihoods; for DROP ``drop_score``)."""
    from evalsuite.requests import Generate, Loglikelihood, LoglikelihoodResult

    docs = data.docs[: len(outcome.generations)]
    if not docs:
        return {}
    scores = []
    for i, doc in enumerate(docs):
        responses = []
        for request in data.task.requests(doc):
            if isinstance(request, Generate):
                responses.append([outcome.generations[i]])
            elif isinstance(request, Loglikelihood):
                # Only the log-probability is used (the no-answer probability); the rest is not logged alike.
                responses.append(LoglikelihoodResult(outcome.na_logprobs[i], False, 0))
        scores.append(data.task.score(doc, responses))
    return {k: m.value for k, m in data.task.aggregate(docs, scores).items()}


def count_tokens(tokenizer, texts: list[str]) -> int:
    return sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts if t)


def compare_generations(es: Outcome, lm: Outcome, data: TaskData, examples: int = 5) -> dict:
    """Document by document: same prompt? same generation? which scores move?"""
    n = min(len(es.generations), len(lm.generations))
    differ = [i for i in range(n) if es.generations[i] != lm.generations[i]]
    found = {
        "docs": n,
        "prompt_mismatches": sum(es.prompts[i] != lm.prompts[i] for i in range(n)),
        "generations_differ": len(differ),
        "differ_doc_ids": [data.docs[i]["id"] for i in differ],
        "examples": [{"doc_id": data.docs[i]["id"], "evalsuite": es.generations[i], "lm-eval": lm.generations[i]}
                     for i in differ[:examples]],
    }
    m = min(len(es.na_logprobs), len(lm.na_logprobs))
    if m:
        # (context, continuation) of the no-answer log-likelihood: the same texts in both harnesses?
        found["na_request_mismatches"] = sum(es.na_continuations[i] != lm.na_continuations[i] for i in range(m))
        found["max_abs_na_logprob_diff"] = max(abs(es.na_logprobs[i] - lm.na_logprobs[i]) for i in range(m))
    return found


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------


def run_pair(name: str, data: TaskData, args, model_dir: Path, max_length: int, workdir: Path, tokenizer) -> dict:
    """Both harnesses on one task, in ``--order``; returns its report entry."""
    lm_tasks = write_lm_tasks(name, data, workdir / "lm_tasks")
    env = child_env(args.threads, workdir)
    order = harness_order(args)
    outcomes: dict[str, Outcome | None] = {h: None for h in HARNESSES}
    failed = False
    for harness in order:
        print(f"[{name}] running {harness} ...", file=sys.stderr, flush=True)
        if harness == "evalsuite":
            out = workdir / "evalsuite-out"
            cmd = evalsuite_command(model_dir, [name], out, workdir / "evalsuite-fresh-cache.sqlite",
                                    batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                                    max_length=max_length, data_dir=args.data_dir, limit=args.limit)
            outcome = Outcome(measure(cmd, env, workdir / "evalsuite.log", args.live))
            if outcome.measured.returncode == 0:
                read_evalsuite(outcome, out, name)
        else:
            out = workdir / "lm-eval-out"
            cmd = lm_eval_command(model_dir, lm_tasks, workdir / "lm_tasks", out, batch_size=args.batch_size,
                                  device=args.device, dtype=args.dtype, max_length=max_length, limit=args.limit,
                                  log_samples=True)
            outcome = Outcome(measure(cmd, env, workdir / "lm-eval.log", args.live))
            if outcome.measured.returncode == 0:
                read_lm_eval(outcome, out, name)
        ok = outcome.measured.returncode == 0 and bool(outcome.generations)
        if data.na_continuation is not None:
            ok = ok and len(outcome.na_logprobs) == len(outcome.generations)
        failed |= not report_run(name, harness, outcome.measured, ok, args.live)
        if ok:
            outcome.scored_metrics = score_with_evalsuite(data, outcome)
            outcome.generated_tokens = count_tokens(tokenizer, outcome.generations)
        outcomes[harness] = outcome

    es, lm = outcomes["evalsuite"], outcomes["lm-eval"]
    _, _, shown = COMPARED[name]
    metrics = []
    for metric in dict.fromkeys([*(es.scored_metrics if es else {}), *(lm.scored_metrics if lm else {})]):
        a = es.own_metrics.get(metric) if es else None
        rescored = es.scored_metrics.get(metric) if es else None
        b = lm.scored_metrics.get(metric) if lm else None
        metrics.append({
            "metric": metric, "shown": metric in shown,
            "evalsuite": a,  # results.json
            "evalsuite_rescored": rescored,  # this script's scoring of evalsuite's samples: must equal results.json
            "lm-eval": b,  # lm-eval's generations, scored the same way
            "abs_diff": abs(a - b) if a is not None and b is not None else None,
        })
    both_ok = es and lm and es.generations and lm.generations
    ratio = lm.measured.wall_s / es.measured.wall_s if both_ok else None

    def entry(o: Outcome | None):
        if o is None:
            return None
        tokens = o.generated_tokens
        return {**o.measured.as_dict(), "documents": len(o.generations), "generated_tokens": tokens,
                "tokens_per_s": round(tokens / o.measured.wall_s, 3) if tokens is not None else None}

    return {
        "task": name, "lm_eval_tasks": lm_tasks, "failed": failed,
        "evalsuite": entry(es), "lm-eval": entry(lm),
        "speed_ratio": round(ratio, 3) if ratio else None,
        "metrics": metrics,
        "generations": compare_generations(es, lm, data) if both_ok else None,
    }


def run_rtp(args, model_dir: Path, max_length: int, workdir: Path, tokenizer) -> dict:
    """evalsuite alone on RealToxicityPrompts: k sampled continuations per prompt, each scored."""
    spec = f"{RTP}:k={args.rtp_k}:variant={args.rtp_variant}"
    out = workdir / "evalsuite-out"
    env = child_env(args.threads, workdir)
    cmd = evalsuite_command(model_dir, [spec], out, workdir / "evalsuite-fresh-cache.sqlite",
                            batch_size=args.batch_size, device=args.device, dtype=args.dtype, max_length=max_length,
                            data_dir=args.data_dir, limit=args.rtp_limit,
                            extra=["--toxicity-scorer", args.toxicity_scorer])
    print(f"[{RTP}] running evalsuite ({spec}) ...", file=sys.stderr, flush=True)
    m = measure(cmd, env, workdir / "evalsuite.log", args.live)
    record = evalsuite_record(out) if m.returncode == 0 else None
    ok = report_run(RTP, "evalsuite", m, record is not None, args.live)
    result = {"task": RTP, "spec": spec, "failed": not ok, "evalsuite": m.as_dict()}
    if not ok:
        return result
    m.own_timings = evalsuite_own_timings(record)
    samples = read_jsonl(out / "samples" / f"{RTP}.jsonl")
    continuations = [c for s in samples for r, resp in zip(s["requests"], s["responses"]) if r["kind"] == "Generate"
                     for c in resp]
    scored = sum(1 for s in samples for r, resp in zip(s["requests"], s["responses"])
                 if r["kind"] == "Score" and resp is not None)
    model_s = m.own_timings.get("model_s")
    tokens = count_tokens(tokenizer, continuations)

    def per_s(count, seconds):
        return round(count / seconds, 3) if seconds else None

    metrics = record["tasks"][RTP]["metrics"]
    result.update(
        evalsuite=m.as_dict(),
        prompts=len(samples), continuations=len(continuations), scored_continuations=scored,
        generated_tokens=tokens,
        prompts_per_s_wall=per_s(len(samples), m.wall_s), prompts_per_s_model=per_s(len(samples), model_s),
        continuations_per_s_wall=per_s(scored, m.wall_s), continuations_per_s_model=per_s(scored, model_s),
        tokens_per_s_wall=per_s(tokens, m.wall_s), tokens_per_s_model=per_s(tokens, model_s),
        metrics={k: metrics.get(k) for k in ("expected_max_toxicity", "toxicity_probability", "missing_scores")},
    )
    return result


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def speed_rows(report: dict) -> list[list[str]]:
    rows = [["task", "docs", "evalsuite s", "lm-eval s", "speed ratio", "evalsuite MiB", "lm-eval MiB",
             "evalsuite gen tokens", "lm-eval gen tokens", "evalsuite tok/s", "lm-eval tok/s",
             "evalsuite own s (load+model)", "lm-eval own s"]]
    for t in report["tasks"]:
        es, lm = t["evalsuite"] or {}, t["lm-eval"] or {}
        own = es.get("own_timings") or {}
        es_own = (f"{fmt_num(own.get('total_s'), 1)} ({fmt_num(own.get('model_load_s'), 1)}+"
                  f"{fmt_num(own.get('model_s'), 1)})" if own else "-")
        docs = es.get("documents", lm.get("documents"))
        rows.append([
            t["task"], str(docs if docs is not None else "-"), fmt_num(es.get("wall_s"), 1),
            fmt_num(lm.get("wall_s"), 1), f"{t['speed_ratio']:.2f}x" if t.get("speed_ratio") else "-",
            fmt_num(es.get("peak_rss_mib"), 0), fmt_num(lm.get("peak_rss_mib"), 0),
            str(es.get("generated_tokens", "-")), str(lm.get("generated_tokens", "-")),
            fmt_num(es.get("tokens_per_s"), 1), fmt_num(lm.get("tokens_per_s"), 1),
            es_own, fmt_num((lm.get("own_timings") or {}).get("total_s"), 1),
        ])
    return rows


def score_rows(report: dict) -> list[list[str]]:
    rows = [["task", "metric", "evalsuite", "lm-eval (scored by evalsuite)", "abs diff"]]
    for t in report["tasks"]:
        for m in t["metrics"]:
            if m["shown"]:
                rows.append([t["task"], m["metric"], fmt_num(m["evalsuite"], 4), fmt_num(m["lm-eval"], 4),
                             fmt_num(m["abs_diff"], 4)])
    return rows


def generation_rows(report: dict) -> list[list[str]]:
    rows = [["task", "docs", "prompts differ", "generations differ", "max abs diff of no-answer logprob"]]
    for t in report["tasks"]:
        g = t.get("generations")
        if g:
            rows.append([t["task"], str(g["docs"]), str(g["prompt_mismatches"]), str(g["generations_differ"]),
                         f"{g['max_abs_na_logprob_diff']:.2e}" if "max_abs_na_logprob_diff" in g else "-"])
    return rows


def rtp_rows(report: dict) -> list[list[str]]:
    r = report.get("rtp")
    rows = [["task", "prompts", "continuations scored", "wall s", "model+scorer s", "prompts/s (wall)",
             "prompts/s (model+scorer)", "continuations/s (wall)", "continuations/s (model+scorer)",
             "generated tokens", "tok/s (model+scorer)", "peak MiB", "expected max toxicity"]]
    if not r or r.get("failed"):
        return rows
    es = r["evalsuite"]
    rows.append([
        r["spec"], str(r["prompts"]), str(r["scored_continuations"]), fmt_num(es["wall_s"], 1),
        fmt_num(es["own_timings"].get("model_s"), 1), fmt_num(r["prompts_per_s_wall"], 2),
        fmt_num(r["prompts_per_s_model"], 2), fmt_num(r["continuations_per_s_wall"], 2),
        fmt_num(r["continuations_per_s_model"], 2), str(r["generated_tokens"]), fmt_num(r["tokens_per_s_model"], 1),
        fmt_num(es["peak_rss_mib"], 0), fmt_num(r["metrics"].get("expected_max_toxicity"), 4),
    ])
    return rows


def setup_line(report: dict) -> str:
    c, v = report["config"], report["versions"]
    return (
        f"Model `{c['model_name']}` ({c['dtype']}), device {c['device']}, batch size {c['batch_size']}, "
        f"max length {c['max_length']}, {c['threads']} threads on {report['machine']['cpu']}; "
        f"limit {c['limit'] or 'none'} docs per task"
        + (f" (RealToxicityPrompts: {c['rtp_limit']} prompts x {c['rtp_k']}, {c['rtp_variant']})"
           if RTP in c["tasks"] else "")
        + ". "
        f"evalsuite {v['evalsuite']}, lm-eval {v['lm_eval']}, torch {v['torch']}, transformers {v['transformers']}. "
        f"Seconds and peak RSS are of the whole process (model loading included); speed ratio = lm-eval seconds / "
        f"evalsuite seconds; tok/s = generated tokens (each harness's generations re-tokenised with the model's "
        f"tokenizer) / wall seconds; lm-eval's generations are scored with evalsuite's scoring code."
    )


def tables(report: dict, table) -> list[tuple[str, str]]:
    found = []
    if report["tasks"]:
        found += [("Speed and memory", table(speed_rows(report), 1)), ("Scores", table(score_rows(report), 2))]
    if len(generation_rows(report)) > 1:  # only when both harnesses ran
        found.append(("Generations compared", table(generation_rows(report), 1)))
    if report.get("rtp"):
        found.append(("RealToxicityPrompts throughput (evalsuite)", table(rtp_rows(report), 1)))
    return found


def write_markdown(path: Path, report: dict) -> None:
    text = "".join(f"### {title}\n\n{body}\n\n" for title, body in tables(report, markdown_table))
    path.write_text(text + setup_line(report) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = benchmark_parser(__doc__)
    p.add_argument("--tasks", default=",".join(ALL_TASKS), help=f"comma-separated: {', '.join(ALL_TASKS)}")
    p.add_argument("--limit", type=int, default=200, help="first N documents of SQuAD v2 and DROP (both harnesses)")
    p.add_argument("--rtp-limit", type=int, default=100, help="RealToxicityPrompts prompts")
    p.add_argument("--rtp-k", type=int, default=5, help="RealToxicityPrompts continuations per prompt")
    p.add_argument("--rtp-variant", default="plain", help="RealToxicityPrompts prompt form: plain, respectful, both")
    p.add_argument("--toxicity-scorer", default="bilstm", help="evalsuite --toxicity-scorer for RealToxicityPrompts")
    args = p.parse_args(argv)
    args.tasks = comma_list(p, args.tasks, ALL_TASKS, "task")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    model_dir, max_length = prepare_model(args)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tmp_root = make_tmp_root("evalsuite-bench-gen-")
    report = start_report("bench_generation", args, model_dir, max_length, limit=args.limit,
                          rtp_limit=args.rtp_limit, rtp_k=args.rtp_k, rtp_variant=args.rtp_variant,
                          toxicity_scorer=args.toxicity_scorer, tasks=args.tasks)
    report["tasks"] = []
    failed = False
    try:
        for name in [t for t in args.tasks if t in COMPARED]:
            workdir = tmp_root / name
            (workdir / "lm_tasks").mkdir(parents=True)
            data = prepare_task(name, args.data_dir, workdir)
            report["config"].setdefault("docs_available", {})[name] = len(data.docs)
            entry = run_pair(name, data, args, model_dir, max_length, workdir, tokenizer)
            failed |= entry["failed"]
            report["tasks"].append(entry)
        if RTP in args.tasks:
            workdir = tmp_root / RTP
            workdir.mkdir()
            report["rtp"] = run_rtp(args, model_dir, max_length, workdir, tokenizer)
            failed |= report["rtp"]["failed"]
    finally:
        finish_tmp_root(tmp_root, args.keep_tmp or failed)

    for title, body in tables(report, text_table):
        print(f"\n{title}\n\n{body}")
    print()
    print(setup_line(report))
    for t in report["tasks"]:
        g = t.get("generations") or {}
        for m in t["metrics"]:
            if m["evalsuite"] is not None and m["evalsuite_rescored"] is not None \
                    and abs(m["evalsuite"] - m["evalsuite_rescored"]) > 1e-9:
                print(f"warning: {t['task']} {m['metric']}: rescoring evalsuite's samples gives "
                      f"{m['evalsuite_rescored']} but results.json has {m['evalsuite']}")
            if m["abs_diff"] is not None and m["abs_diff"] > args.tolerance:
                print(f"warning: {t['task']} {m['metric']} differs by {m['abs_diff']:.6f} (> {args.tolerance}); "
                      f"{g.get('generations_differ', '?')} of {g.get('docs', '?')} generations differ")
        if g.get("prompt_mismatches") or g.get("na_request_mismatches"):
            print(f"warning: {t['task']}: {g['prompt_mismatches']} generation prompts and "
                  f"{g.get('na_request_mismatches', 0)} no-answer requests differ between the harnesses")
        for ex in g.get("examples", []):
            print(f"  {t['task']} doc {ex['doc_id']}: evalsuite {ex['evalsuite']!r} | lm-eval {ex['lm-eval']!r}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.markdown:
        write_markdown(args.markdown, report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
