"""Pairwise win rate against a baseline (InstructGPT's headline number), judged by a chosen judge.

For every prompt of the prompt set, the model's greedy (or sampled, as the decoding parameters
say) output is judged against the baseline's output for the same prompt: ``Score("pairwise:<judge>")``
requests, one per order shown (both orders for an ``lm:`` judge, one for ``rm:`` and ``labels:``;
see ``evalsuite.scorers.pairwise``). Baseline outputs are matched to prompts by the prompt text,
never by position. A prompt without a baseline output, an empty output on either side and a judge
that fails are counted (``excluded/<reason>``) and left out, never scored.

Prompt sets (``prompts=``): ``alpaca_eval`` (the 805 AlpacaEval instructions), ``hh_rlhf`` (the
dialogue before the last reply of HH-RLHF's helpful-base test split), or a JSON/JSON Lines file of
prompts (strings, or objects with ``instruction`` or ``prompt``, and an optional ``input``).
Baselines (``baseline=``): the name of an AlpacaEval results folder (``text_davinci_003``, the
default) or an outputs file (AlpacaEval's ``model_outputs.json``, or JSON Lines of
``instruction``/``output``). A checkpoint as the baseline: ``evalsuite compare --baseline CKPT``.

The statistics are ``evalsuite.metrics.winrate``'s (defined in docs/pairwise.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalsuite.data import data_root, load_source
from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import json_lines, sha256_file, sha256_json
from evalsuite.metrics import winrate
from evalsuite.registry import task
from evalsuite.requests import Generate, Request, Score
from evalsuite.scorers import pairwise as pj
from evalsuite.stats import Metric
from evalsuite.task import Dataset, Doc, Task

ALPACA_EVAL = "alpaca_eval/results/{name}/model_outputs.json"
HH_RLHF = "hh_rlhf/helpful-base/test.jsonl.gz"
HH_STOP = ("\n\nHuman:",)
# A few invented rows in AlpacaEval's outputs format, for runs without a data folder.
SAMPLE = json.dumps([
    {"dataset": "sample", "instruction": "Name three primary colours.", "output": "Red, yellow and blue.",
     "generator": "text_davinci_003"},
    {"dataset": "sample", "instruction": "Write one sentence about the sea.",
     "output": "The sea is vast, restless and full of life.", "generator": "text_davinci_003"},
    {"dataset": "sample", "instruction": "What is 12 times 3?", "output": "12 times 3 is 36.",
     "generator": "text_davinci_003"},
], indent=2)
HH_SAMPLE = "\n".join(json.dumps(r) for r in [
    {"chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water for about nine minutes.",
     "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: I don't know."},
    {"chosen": "\n\nHuman: What is the capital of France?\n\nAssistant: Paris.",
     "rejected": "\n\nHuman: What is the capital of France?\n\nAssistant: Lyon, I think."},
]) + "\n"


def norm(text: str) -> str:
    """Prompts and outputs are matched with whitespace runs collapsed."""
    return " ".join(text.split())


# --- reading prompts and outputs -----------------------------------------------------------------


def _rows(path: Path) -> list[tuple[int, Any]]:
    """The rows of a JSON array file or a JSON Lines file (plain or gzip)."""
    from evalsuite.tasks.drop import _read_text

    text = _read_text(path)
    if text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text), start=1))
        except ValueError as err:
            raise EvalsuiteError(f"{path} is not valid JSON ({err}).", "check the file is complete") from None
    return list(json_lines(text, path))


def row_prompt(row: Any) -> str | None:
    """A prompt from a string or an object with ``instruction``/``prompt`` (and ``input``, AlpacaFarm's)."""
    if isinstance(row, str):
        return row
    if not isinstance(row, dict):
        return None
    text = row.get("instruction", row.get("prompt"))
    if not isinstance(text, str):
        return None
    extra = row.get("input")
    return text.strip() + (f"\n\n{extra.strip()}" if isinstance(extra, str) and extra.strip() else "")


def parse_prompts(path: Path) -> list[Doc]:
    docs, seen = [], set()
    for line, row in _rows(path):
        text = row_prompt(row)
        if text is None:
            raise EvalsuiteError(f"Malformed prompt in {path} at line {line}: expected a string or an object with "
                                 "'instruction' or 'prompt'.", "fix or remove that row")
        if norm(text) in seen:  # a prompt listed twice is judged once
            continue
        seen.add(norm(text))
        docs.append({"id": str(len(docs)), "prompt": text, "chat": True, "stop": []})
    return docs


def split_hh(dialogue: str) -> tuple[str, str] | None:
    """(the dialogue up to and including the last ``Assistant:``, the reply after it)."""
    head, sep, reply = dialogue.rpartition("\n\nAssistant:")
    return (f"{head}{sep}".lstrip(), reply.strip()) if sep and head.strip() else None


def parse_hh(path: Path) -> list[Doc]:
    """HH-RLHF rows whose chosen and rejected dialogues share everything before the last reply."""
    docs = []
    for line, row in _rows(path):
        if not isinstance(row, dict) or not isinstance(row.get("chosen"), str) or not isinstance(
                row.get("rejected"), str):
            raise EvalsuiteError(f"Malformed row in {path} at line {line}: needs 'chosen' and 'rejected' dialogues.",
                                 "fix or remove that row, or re-download the file")
        chosen, rejected = split_hh(row["chosen"]), split_hh(row["rejected"])
        if chosen and rejected and chosen[0] == rejected[0] and chosen[1] != rejected[1]:
            docs.append({"id": str(line), "prompt": chosen[0], "chosen": chosen[1], "rejected": rejected[1],
                         "chat": False, "stop": list(HH_STOP)})
    return docs


def load_prompt_set(spec: str, data_dir) -> Dataset:
    if spec == "alpaca_eval":
        return load_source("pairwise_winrate", ALPACA_EVAL.format(name="text_davinci_003"), data_dir, parse_prompts,
                           SAMPLE)
    if spec == "hh_rlhf":
        return load_source("pairwise_winrate", HH_RLHF, data_dir, parse_hh, HH_SAMPLE)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise EvalsuiteError(f"Prompt set '{spec}' is neither alpaca_eval, hh_rlhf nor a file.",
                             "give prompts=alpaca_eval, prompts=hh_rlhf or a JSON/JSONL file of prompts")
    return Dataset(parse_prompts(path), str(path), sha256_file(path))


def parse_outputs(path: Path) -> dict[str, str | None]:
    """normalised prompt -> output (None when missing or empty) of an outputs file."""
    table: dict[str, str | None] = {}
    for line, row in _rows(path):
        text = row_prompt(row) if isinstance(row, dict) else None
        if text is None or not isinstance(row.get("output", ""), (str, type(None))):
            raise EvalsuiteError(f"Malformed output in {path} at line {line}: expected an object with 'instruction' "
                                 "(or 'prompt') and 'output'.", "fix or remove that row")
        output = row.get("output")
        table[norm(text)] = output if isinstance(output, str) and output.strip() else None
    if not table:
        raise EvalsuiteError(f"Outputs file {path} holds no outputs.", "give a file with at least one output")
    return table


def outputs_path(spec: str, data_dir) -> tuple[Path | None, str]:
    """An outputs file by path, or an AlpacaEval results folder name (in the data folder)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path, str(path)
    if "/" in spec or spec.endswith((".json", ".jsonl")):
        raise EvalsuiteError(f"Outputs file {spec} does not exist.", "check the path")
    return None, ALPACA_EVAL.format(name=spec)


def load_outputs(spec: str, data_dir) -> tuple[dict[str, str | None], str, str]:
    """(outputs by normalised prompt, source, sha256)."""
    path, rel = outputs_path(spec, data_dir)
    if path is None:
        if data_root(data_dir) is None and spec != "text_davinci_003":
            raise EvalsuiteError(f"Baseline '{spec}' needs a data folder holding {rel}.",
                                 "set --data-dir or EVALSUITE_DATA, or give an outputs file")
        rows = load_source("pairwise_winrate", rel, data_dir, lambda p: [{"id": "0", "path": p}], SAMPLE)
        path = Path(rows.docs[0]["path"])
    return parse_outputs(path), str(path), sha256_file(path)


# --- the task ------------------------------------------------------------------------------------


def generate_request(doc: Doc, decoding: dict) -> Generate:
    """The model's output for a prompt (``evalsuite compare`` makes the same request, so both share the cache)."""
    return Generate(doc["prompt"], stop=tuple(doc["stop"]), max_tokens=decoding["max_tokens"],
                    temperature=decoding["temperature"], top_p=decoding["top_p"], seed=decoding["seed"],
                    chat=doc["chat"])


def check_judge(spec: str) -> pj.Labels | None:
    """Refuse a bad judge before any model loads; the labels (cheap to read) are returned."""
    from evalsuite.models.loading import check_kind, resolve_model_path

    kind, rest = pj.split_spec(spec)
    if kind == "labels":
        return pj.Labels(spec, rest)
    if kind == "rm":
        check_kind(resolve_model_path(rest, "--judge"), "reward", "--judge")
    return None


def judge_requests(doc: Doc, output: str, baseline: str, judge: str, labels, one_order: bool) -> list[Request]:
    kind = pj.split_spec(judge)[0]
    orders = pj.orders_for(kind, labels, doc["prompt"], output, baseline, one_order, f"{doc['id']}|{judge}")
    shown = (pj.shown_triple(o, doc["prompt"], output, baseline)[1:] for o in orders)
    return [Score(pj.scorer_name(judge), text=pj.encode_outputs(*pair), context=doc["prompt"]) for pair in shown]


def pair_result(orders: list[str], responses: list[Any]) -> dict[str, Any]:
    """by_order (P(model better) per order; None = not judged or failed), preference, outcome."""
    by_order: dict[str, float | None] = dict.fromkeys(winrate.ORDERS)
    for order, p_first in zip(orders, responses):
        by_order[order] = pj.model_preference(order, p_first)
    return {"by_order": by_order, "preference": winrate.preference(by_order), "outcome": winrate.outcome(by_order)}


def summary_metrics(scores: list[dict[str, Any]], prefix: str = "") -> dict[str, Metric]:
    """Win rate, its CI, mean preference, LC win rate, position bias and counts of judged pairs."""
    judged = [s for s in scores if s["outcome"] != "excluded"]
    n = len(judged)
    stats = winrate.summarise([s["outcome"] for s in judged], [s["preference"] for s in judged],
                              [s["by_order"] for s in judged], [len(s["output"]) for s in judged],
                              [len(s["baseline_output"]) for s in judged])
    rate, pref, lc = stats.rate, stats.preference, stats.lc
    bias, disagree = stats.position_bias, stats.order_disagreement
    low, high = rate.ci or (float("nan"), float("nan"))
    nan = float("nan")
    metrics = {
        "win_rate": Metric(rate.value, rate.se, n), "win_rate_ci_low": Metric(low, None, n),
        "win_rate_ci_high": Metric(high, None, n), "mean_preference": Metric(pref.value, pref.se, n),
        "lc_win_rate": Metric(lc.value, lc.se, n),
        "position_bias": Metric(nan if bias is None else bias, None, stats.n_both_orders),
        "order_disagreement": Metric(nan if disagree is None else disagree, None, stats.n_both_orders),
    }
    plural = {"win": "wins", "tie": "ties", "loss": "losses"}
    for key, count in stats.counts.items():
        if key in plural:
            metrics[plural[key]] = Metric(float(count), None, n)
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def excluded_metrics(scores: list[dict[str, Any]]) -> dict[str, Metric]:
    reasons: dict[str, int] = {}
    for s in scores:
        if s.get("excluded"):
            reasons[s["excluded"]] = reasons.get(s["excluded"], 0) + 1
    out = {f"excluded/{r}": Metric(float(c), None, len(scores)) for r, c in sorted(reasons.items())}
    return {"excluded": Metric(float(sum(reasons.values())), None, len(scores)), **out}


@task
def pairwise_winrate(prompts: str = "alpaca_eval", baseline: str = "text_davinci_003", judge: str = "lm:default",
                     max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                     one_order: bool = False) -> Task:
    labels = check_judge(judge)
    decoding = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}

    def load(data_dir) -> Dataset:
        prompt_set = load_prompt_set(prompts, data_dir)
        if prompts == "hh_rlhf" and baseline == "hh_rlhf_chosen":
            table = {norm(d["prompt"]): d["chosen"] for d in prompt_set.docs}
            base_source, base_sha = prompt_set.source, prompt_set.sha256
        else:
            table, base_source, base_sha = load_outputs(baseline, data_dir)
        docs = [d | {"baseline": table.get(norm(d["prompt"]))} for d in prompt_set.docs]
        if not any(d["baseline"] is not None for d in docs):
            raise EvalsuiteError(f"Baseline {base_source} has no output for any prompt of {prompt_set.source}.",
                                 "give a baseline whose outputs answer the same prompts")
        return Dataset(docs, f"{prompt_set.source} | baseline {base_source}",
                       sha256_json([prompt_set.sha256, base_sha]))

    def requests(doc: Doc) -> list[Request]:
        if doc["baseline"] is None:
            return []  # nothing to judge against: counted in score, no generation spent on it
        return [generate_request(doc, decoding)]

    def followup(doc: Doc, responses: list[Any]) -> list[Request]:
        output = responses[0][0].strip() if responses else ""
        if doc["baseline"] is None or not output:
            return []
        return judge_requests(doc, output, doc["baseline"], judge, labels, one_order)

    def score(doc: Doc, responses: list[Any]) -> dict[str, Any]:
        output = responses[0][0].strip() if responses else ""
        base = doc["baseline"] or ""
        row = {"output": output, "baseline_output": base, "by_order": dict.fromkeys(("model_first", "baseline_first")),
               "preference": None, "outcome": "excluded", "excluded": None}
        if doc["baseline"] is None:
            return row | {"excluded": "no_baseline_output"}
        if not output:
            return row | {"excluded": "empty_output"}
        orders = pj.orders_for(pj.split_spec(judge)[0], labels, doc["prompt"], output, base, one_order,
                               f"{doc['id']}|{judge}")
        if not orders:
            return row | {"excluded": "no_label"}
        result = pair_result(orders, responses[1:])
        return row | result | {"excluded": "judge_failed" if result["outcome"] == "excluded" else None}

    def aggregate(docs: list[Doc], scores: list[dict[str, Any]]) -> dict[str, Metric]:
        return summary_metrics(scores) | excluded_metrics(scores)

    higher = {"win_rate": True, "mean_preference": True, "lc_win_rate": True, "wins": True, "losses": False,
              "excluded": False}
    return Task(
        name="pairwise_winrate", load=load, requests=requests, followup=followup, score=score, aggregate=aggregate,
        primary_metric="win_rate", group="alignment", higher_is_better=higher, version="1",
        data=f"{ALPACA_EVAL.format(name='text_davinci_003')} (prompts and baseline), or files",
        description="Pairwise win rate of the model's outputs against a baseline's on the same prompts, "
        "judged by an rm:, lm: or labels: judge (ties count one half).",
    )
