"""``evalsuite compare --model A[,B,...] --baseline B --judge JUDGE``: pairwise win rates on one prompt set.

Each side (a model or the baseline) is an outputs file (AlpacaEval's ``model_outputs.json`` form or
JSON Lines of instruction/output), a run record holding ``pairwise_winrate`` generations, the name
of an AlpacaEval results folder in the data folder, or a checkpoint (its outputs generated with the
recorded decoding settings, through the cached runner, the same requests ``pairwise_winrate``
makes). Outputs are matched to prompts by text. Judged pairs go through the same cached requests
as the task, so a killed comparison resumes. The statistics are ``evalsuite.metrics.winrate``'s.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from evalsuite.cli import batch_size_arg, positive_int
from evalsuite.errors import EvalsuiteError
from evalsuite.metrics import winrate
from evalsuite.results import ModelComparison, Pair, check_output, load_run, write_compare
from evalsuite.scorers import pairwise as pj
from evalsuite.tasks import pairwise_winrate as pw


@dataclass
class Side:
    name: str
    source: dict
    outputs: dict[str, str | None]  # normalised prompt -> output (None: missing or empty)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evalsuite compare", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model", required=True, help="comma-separated: checkpoints, run records or outputs files")
    add("--baseline", default="text_davinci_003", help="checkpoint, run record, outputs file or AlpacaEval name")
    add("--prompts", default="alpaca_eval", help="alpaca_eval, hh_rlhf, or a JSON/JSONL file of prompts")
    add("--judge", required=True, help="rm:CKPT, lm:MODEL or labels:FILE")
    add("--output", default=None, help="folder for compare.json and pairs.jsonl (default runs/compare-<time>)")
    add("--limit", type=positive_int, default=None, help="the first N prompts")
    add("--agreement-with", default=None, help="labels (AlpacaEval annotations or JSONL) to score the judge on")
    add("--one-order", action="store_true", help="an lm: judge sees each pair in one seeded order, not both")
    add("--max-tokens", type=positive_int, default=256, help="most tokens generated per output (checkpoint sides)")
    add("--temperature", type=float, default=0.0, help="sampling temperature of generated outputs (0 = greedy)")
    add("--top-p", type=float, default=1.0, help="nucleus sampling of generated outputs (1 = off)")
    add("--seed", type=int, default=0, help="seeds sampled outputs and the one-order shuffle")
    add("--data-dir", default=None, help="datasets folder (default: EVALSUITE_DATA)")
    add("--cache", default=None, help="request cache (default: the evalsuite home's cache.sqlite)")
    add("--device", default="auto", help="cpu, cuda or auto")
    add("--batch-size", type=batch_size_arg, default=16, help="sequences per forward pass, or 'auto'")
    add("--chat-template", default="auto", help="prompts through the model's chat template: auto, on, off")
    return parser.parse_args(argv)


# --- the sides -----------------------------------------------------------------------------------


def _unique_name(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}-{k}", k + 1
    taken.add(out)
    return out


def from_run(folder: Path, docs: list[dict]) -> tuple[dict, dict]:
    run = load_run(folder)
    keys = [k for k, t in run.tasks.items() if t.name == "pairwise_winrate"]
    if not keys:
        raise EvalsuiteError(f"Run {folder} holds no pairwise_winrate generations.",
                             "run evalsuite run --tasks pairwise_winrate on that checkpoint, or give its outputs file")
    outputs = {}
    for sample in run.samples(keys[0]):
        text = sample.scores.get("output")
        outputs[pw.norm(sample.doc["prompt"])] = text if text else None
    wanted = {pw.norm(d["prompt"]) for d in docs}
    if not wanted & set(outputs):
        raise EvalsuiteError(f"Run {folder} has no generations for the prompt set.",
                             "give the same prompt set (--prompts) the run used")
    source = {"kind": "run", "path": str(folder), "fingerprint": run.model.get("fingerprint"),
              "lineage": run.lineage, "params": run.tasks[keys[0]].params}
    return outputs, source


def generate(spec: str, docs: list[dict], args, cache) -> tuple[dict, dict]:
    """A checkpoint's outputs through the cached runner (the requests ``pairwise_winrate`` makes)."""
    from evalsuite.models.hf import HFModel
    from evalsuite.runner import TaskResult, evaluate_prepared
    from evalsuite.task import Dataset, Task

    decoding = {"max_tokens": args.max_tokens, "temperature": args.temperature, "top_p": args.top_p,
                "seed": args.seed}
    task = Task(name="pairwise_outputs", load=lambda _: None, requests=lambda d: [pw.generate_request(d, decoding)],
                score=lambda d, r: {"output": r[0][0].strip()}, primary_metric="", aggregate=lambda d, s: {})
    model = HFModel(spec, device=args.device, batch_size=args.batch_size, chat_template=args.chat_template)
    prepared = [TaskResult(task, Dataset(docs, "", ""), docs, [task.requests(d) for d in docs])]
    results, _ = evaluate_prepared(model, prepared, cache, None)
    outputs = {pw.norm(d["prompt"]): s["output"] or None for d, s in zip(docs, results[0].scores)}
    info = model.describe()
    source = {"kind": "checkpoint", "spec": spec, "path": info["path"], "fingerprint": info["fingerprint"],
              "lineage": info["lineage"], "decoding": decoding, "chat_template": info["chat_template"]}
    del model
    return outputs, source


def resolve_side(spec: str, docs: list[dict], args, cache, taken: set[str]) -> Side:
    path = Path(spec).expanduser()
    if path.is_file():
        outputs = pw.parse_outputs(path)
        name = path.parent.name if path.stem == "model_outputs" else path.stem
        return Side(_unique_name(name, taken), {"kind": "outputs", "path": str(path)}, outputs)
    if path.is_dir() and (path / "results.json").is_file():
        outputs, source = from_run(path, docs)
        return Side(_unique_name(path.name, taken), source, outputs)
    named = pw.data_root(args.data_dir)
    if named is not None and (named / pw.ALPACA_EVAL.format(name=spec)).is_file():
        file = named / pw.ALPACA_EVAL.format(name=spec)
        return Side(_unique_name(spec, taken), {"kind": "outputs", "path": str(file)}, pw.parse_outputs(file))
    outputs, source = generate(spec, docs, args, cache)
    return Side(_unique_name(Path(spec.rstrip("/")).name or spec, taken), source, outputs)


# --- judging -------------------------------------------------------------------------------------


@dataclass
class Job:
    model: str
    opponent: str  # "" = the baseline
    doc: dict
    output: str
    other: str
    orders: list[str]


def shared_jobs(a: Side, b: Side, docs: list[dict], judge: str, labels, one_order: bool, opponent: str,
                left_out: dict[str, int]) -> list[Job]:
    jobs = []
    kind = pj.split_spec(judge)[0]
    for doc in docs:
        key = pw.norm(doc["prompt"])
        reason = next((f"{s.name}: {'no output' if key not in s.outputs else 'empty output'}"
                       for s in (a, b) if not s.outputs.get(key)), None)
        if reason:
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        mine, theirs = a.outputs[key].strip(), b.outputs[key].strip()
        orders = pj.orders_for(kind, labels, doc["prompt"], mine, theirs, one_order, f"{doc['id']}|{judge}")
        if not orders:
            left_out[f"{a.name}: no label"] = left_out.get(f"{a.name}: no label", 0) + 1
            continue
        jobs.append(Job(a.name, opponent, doc, mine, theirs, orders))
    return jobs


def judge_jobs(jobs: list[Job], judge: str, scorers, cache) -> list[Pair]:
    from evalsuite.requests import Score, request_key
    from evalsuite.runner import RunStats, compute_responses

    def request(job: Job, order: str) -> Score:
        _, first, second = pj.shown_triple(order, job.doc["prompt"], job.output, job.other)
        return Score(pj.scorer_name(judge), text=pj.encode_outputs(first, second), context=job.doc["prompt"])

    unique = {request_key(r): r for job in jobs for r in (request(job, o) for o in job.orders)}
    answers = compute_responses(None, scorers, unique, cache, RunStats())
    pairs = []
    for job in jobs:
        result = pw.pair_result(job.orders, [answers[request_key(request(job, o))] for o in job.orders])
        pairs.append(Pair(job.model, job.doc["id"], job.doc["prompt"], job.output, job.other, result["by_order"],
                          result["preference"], result["outcome"], job.opponent))
    return pairs


def summarise(side: Side, pairs: list[Pair], left_out: dict[str, int]) -> tuple[ModelComparison, list[str]]:
    judged = [p for p in pairs if p.outcome != "excluded"]
    stats = winrate.summarise([p.outcome for p in judged], [p.preference for p in judged],
                              [p.by_order for p in judged], [len(p.output) for p in judged],
                              [len(p.baseline_output) for p in judged])
    rate, pref, lc, bias, c = stats.rate, stats.preference, stats.lc, stats.position_bias, stats.counts
    excluded = {k.split(": ", 1)[1]: v for k, v in left_out.items() if k.startswith(f"{side.name}: ")}
    if len(pairs) > len(judged):
        excluded["judge_failed"] = len(pairs) - len(judged)
    warnings = []
    if judged and lc.value == lc.value and winrate.lc_is_extreme(rate.value, lc.value):
        warnings.append(f"{side.name}: the length-controlled win rate ({lc.value:.3f}) differs from the raw win rate "
                        f"({rate.value:.3f}) by more than AlpacaEval's warning threshold; check the fit and the data")
    return ModelComparison(side.name, side.source, len(judged), c["win"], c["tie"], c["loss"], rate.value, rate.se,
                           rate.ci, pref.value, pref.se, lc.value if judged else None, lc.se, bias, excluded), warnings


def agreement_with(path: str, pairs: list[Pair]) -> dict:
    labels = pj.Labels(f"labels:{path}", path)
    ours, theirs = [], []
    for p in pairs:
        if p.preference is None:
            continue
        given = labels.lookup(p.prompt, p.output, p.baseline_output)
        if given is None and (flipped := labels.lookup(p.prompt, p.baseline_output, p.output)) is not None:
            given = 1.0 - flipped
        if given is not None:
            ours.append(p.preference)
            theirs.append(given)
    result = winrate.agreement(ours, theirs) | {"labels": str(labels.path), "labels_sha256": labels.fingerprint,
                                                "unmatched_pairs": len(pairs) - len(ours)}
    return result


def extra_stats(sides: list[Side], baseline: Side, pairs: list[Pair], h2h: list[Pair]) -> dict:
    score = {(p.model, p.prompt_id): winrate.SCORE[p.outcome] for p in pairs if p.outcome in winrate.SCORE}
    paired = {}
    for a, b in itertools.combinations([s.name for s in sides], 2):
        shared = sorted({pid for m, pid in score if m == a} & {pid for m, pid in score if m == b})
        paired[f"{a} - {b}"] = winrate.paired_difference([score[a, i] for i in shared], [score[b, i] for i in shared])
    out = {"paired": paired} if paired else {}
    if h2h:
        players = [baseline.name, *(s.name for s in sides)]
        index = {n: i for i, n in enumerate(players)}
        battles = [(index[p.model], index[p.opponent or baseline.name], winrate.SCORE[p.outcome])
                   for p in pairs + h2h if p.outcome in winrate.SCORE]
        out["bradley_terry"] = winrate.bradley_terry(players, battles, anchor=0)
    return out


# --- the command ---------------------------------------------------------------------------------


def print_table(models: dict[str, ModelComparison], baseline: str) -> None:
    def f(x):
        return "-" if x is None else f"{x:.3f}"

    print(f"against {baseline}:")
    print(f"{'model':<24} {'n':>5} {'W/T/L':>12} {'win rate':>9} {'± se':>6} {'95% CI':>15} {'LC':>6} {'± se':>6} "
          f"{'pos.bias':>8}")
    for m in models.values():
        ci = f"[{f(m.win_rate_ci[0])}, {f(m.win_rate_ci[1])}]" if m.win_rate_ci else "-"
        print(f"{m.name:<24} {m.n:>5} {f'{m.wins}/{m.ties}/{m.losses}':>12} {f(m.win_rate):>9} {f(m.win_rate_se):>6} "
              f"{ci:>15} {f(m.lc_win_rate):>6} {f(m.lc_win_rate_se):>6} {f(m.position_bias):>8}")


def main(argv: list[str]) -> int:
    from evalsuite.cache import RequestCache, check_cache_path
    from evalsuite.paths import home
    from evalsuite.scorers.scorer_set import ScorerSet

    args = parse_args(argv[1:])
    labels = pw.check_judge(args.judge)  # a bad judge fails before any model loads
    if args.agreement_with:
        pj.Labels("agreement", args.agreement_with)
    output = Path(args.output or f"runs/compare-{datetime.now():%Y%m%d-%H%M%S}")
    check_output(output, overwrite=True)
    prompt_set = pw.load_prompt_set(args.prompts, args.data_dir)
    docs = prompt_set.docs[: args.limit] if args.limit else prompt_set.docs
    cache_path = Path(args.cache).expanduser() if args.cache else home() / "cache.sqlite"
    check_cache_path(cache_path)
    cache = RequestCache(cache_path)
    try:
        taken: set[str] = set()
        specs = [s.strip() for s in args.model.split(",") if s.strip()]
        baseline = resolve_side(args.baseline, docs, args, cache, taken)
        sides = [resolve_side(s, docs, args, cache, taken) for s in specs]
        scorers = ScorerSet(device=args.device)
        left_out: dict[str, int] = {}
        jobs = [j for s in sides for j in shared_jobs(s, baseline, docs, args.judge, labels, args.one_order, "",
                                                     left_out)]
        if not jobs:
            why = ", ".join(f"{k} ({v})" for k, v in left_out.items()) or "no prompts"
            raise EvalsuiteError(f"No prompt has outputs from both sides to judge: {why}.",
                                 "give outputs for the same prompts (--prompts), or a judge that covers them")
        h2h_jobs = [j for a, b in itertools.combinations(sides, 2)
                    for j in shared_jobs(a, b, docs, args.judge, labels, args.one_order, b.name, {})]
        pairs = judge_jobs(jobs, args.judge, scorers, cache)
        h2h = judge_jobs(h2h_jobs, args.judge, scorers, cache) if h2h_jobs else []
        judge = scorers.pairwise(args.judge).describe()
    finally:
        cache.close()
    models, warnings = {}, []
    for side in sides:
        summary, notes = summarise(side, [p for p in pairs if p.model == side.name], left_out)
        models[side.name] = summary
        warnings += notes
    judge_info = {k: v for k, v in judge.items() if k != "model"} | {"model": judge.get("model"), "agreement": None}
    if args.agreement_with:
        judge_info["agreement"] = agreement_with(args.agreement_with, pairs)
    record = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["evalsuite", *argv]), "judge": judge_info,
        "prompts": {"source": prompt_set.source, "sha256": prompt_set.sha256, "n_total": len(docs),
                    "n_shared": len({j.doc["id"] for j in jobs}), "left_out": left_out},
        "decoding": {"max_tokens": args.max_tokens, "temperature": args.temperature, "top_p": args.top_p,
                     "seed": args.seed, "chat_template": args.chat_template},
        "baseline": {"name": baseline.name, **baseline.source},
        "models": {name: asdict(m) for name, m in models.items()},
        "extra": extra_stats(sides, baseline, pairs, h2h) | {"warnings": warnings,
                                                            "lc_instruction_difficulty": "left out"},
    }
    write_compare(output, record, pairs, h2h)
    print_table(models, baseline.name)
    for key, n in left_out.items():
        print(f"left out: {key}: {n} prompts")
    for note in warnings:
        print(f"warning: {note}")
    agreement = judge_info["agreement"]
    if agreement:
        print(f"judge agreement with {args.agreement_with}: accuracy {agreement['accuracy']} "
              f"(kappa {agreement['kappa']}) on {agreement['n']} pairs")
    print(f"\ncomparison: {output}/compare.json")
    return 0
