"""Real run records for the report tests: the tiny model (base) and a fine-tuned stand-in of it
(a few optimizer steps on real demonstrations, saved as a checkpoint whose manifest says stage
"sft" with the base in its lineage), both evaluated by ``evalsuite run`` on real data, plus a
comparison folder in the format ``evalsuite compare`` writes."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from evalsuite.cli import main
from evalsuite.models.loading import MANIFEST, fingerprint
from evalsuite.results import ModelComparison, Pair, write_compare

# The likelihood, generation and scored-generation kinds of task; WikiText (slow: whole articles)
# runs on its own with fewer documents, so each checkpoint also has a second run.
TASKS = "truthfulqa_mc1,crows_pairs,winogender,squad_v2,realtoxicityprompts:k=2:max_tokens=8:variant=plain"
LIMIT = 6
PAYLOAD = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def demonstrations(data_dir: Path, n: int = 8) -> list[str]:
    rows = [json.loads(line) for line in (data_dir / "stanford_alpaca" / "seed_tasks.jsonl").open()][:n]
    return [f"{r['instruction']}\n{r['instances'][0]['input']}\n{r['instances'][0]['output']}" for r in rows]


def fine_tune(base: Path, out: Path, data_dir: Path, steps: int = 3) -> Path:
    """A few AdamW steps of plain next-token training on real demonstrations."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = LlamaForCausalLM.from_pretrained(base)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    texts = demonstrations(data_dir)
    for step in range(steps):
        ids = tokenizer(texts[step % len(texts)], return_tensors="pt", truncation=True, max_length=128).input_ids
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    manifest = {"stage": "sft", "parent": str(base), "steps": steps,
                "lineage": [{"stage": "base", "path": str(base), "fingerprint": fingerprint(str(base))}]}
    (out / MANIFEST).write_text(json.dumps(manifest))
    return out


def evaluate(model: Path, out: Path, data_dir: Path, cache: Path, tasks: str = TASKS, limit: int = LIMIT) -> Path:
    code = main(["run", "--model", str(model), "--tasks", tasks, "--data-dir", str(data_dir), "--limit", str(limit),
                 "--cache", str(cache), "--device", "cpu", "--max-length", "256", "--output", str(out)])
    assert code == 0
    return out


def plant_payload(run: Path, task: str = "squad_v2") -> str:
    """The first generation of ``task`` replaced by an HTML/JS payload, as a model might write one;
    returns the document's id."""
    file = run / "samples" / f"{task}.jsonl"
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    rows[0]["responses"][0] = [PAYLOAD]
    rows[0]["scores"]["prediction"] = PAYLOAD
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows[0]["doc_id"]


def comparison(folder: Path, base_run: Path, sft_run: Path) -> Path:
    """A comparison of the SFT stand-in with the base on their SQuAD answers, in ``write_compare``'s
    format. The judge's probabilities are seeded stand-ins (no judge model runs in these tests); the
    summary is computed from them the way the win rate is defined (ties count one half)."""
    def rows(run):
        return [json.loads(line) for line in (run / "samples" / "squad_v2.jsonl").read_text().splitlines()]

    rng = np.random.default_rng(0)
    pairs = []
    for mine, theirs in zip(rows(sft_run), rows(base_run)):
        first, second = (float(x) for x in rng.uniform(0.05, 0.95, 2))
        preference = (first + second) / 2
        outcome = "win" if preference > 0.55 else "loss" if preference < 0.45 else "tie"
        pairs.append(Pair("sft", str(mine["doc_id"]), mine["doc"]["question"], mine["responses"][0][0],
                          theirs["responses"][0][0], {"model_first": first, "baseline_first": second}, preference,
                          outcome))
    pairs.append(Pair("sft", "payload", "Repeat this: " + PAYLOAD, PAYLOAD, "I will not.",
                      {"model_first": 0.5, "baseline_first": 0.5}, 0.5, "tie"))
    score = np.array([{"win": 1.0, "tie": 0.5, "loss": 0.0}[p.outcome] for p in pairs])
    draws = [score[rng.integers(0, len(score), len(score))].mean() for _ in range(500)]
    counts = {k: sum(p.outcome == k for p in pairs) for k in ("win", "tie", "loss")}
    summary = ModelComparison(
        name="sft", source={"kind": "run", "path": str(sft_run)}, n=len(pairs), wins=counts["win"],
        ties=counts["tie"], losses=counts["loss"], win_rate=float(score.mean()),
        win_rate_se=float(score.std(ddof=1) / np.sqrt(len(score))),
        win_rate_ci=(float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))),
        mean_preference=float(np.mean([p.preference for p in pairs])), mean_preference_se=0.03,
        lc_win_rate=float(score.mean()) - 0.02, lc_win_rate_se=0.06, position_bias=0.01, excluded={},
    )
    record = {
        "created": "2026-12-01T00:00:00+00:00", "command": "evalsuite compare --models sft --baseline base",
        "judge": {"spec": "minilm", "kind": "similarity", "fingerprint": "f" * 64, "template_sha256": "a" * 64,
                  "agreement": {"accuracy": 0.71, "n": 72}},
        "prompts": {"source": "squad_v2 questions", "sha256": "b" * 64, "n_total": len(pairs),
                    "n_shared": len(pairs), "left_out": {}},
        "decoding": {"temperature": 0.0, "max_tokens": 32}, "baseline": {"name": "base", "path": str(base_run)},
        "models": {"sft": asdict(summary)}, "extra": {},
    }
    write_compare(folder, record, pairs)
    return folder


@pytest.fixture(scope="session")
def report_inputs(tiny_model_dir, data_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report-inputs")
    cache = root / "cache.sqlite"
    sft = fine_tune(tiny_model_dir, root / "ckpt-sft", data_dir)
    runs = {}
    for name, model in (("base", tiny_model_dir), ("sft", sft)):
        runs[f"{name}_run"] = evaluate(model, root / f"run-{name}", data_dir, cache)
        runs[f"{name}_wikitext"] = evaluate(model, root / f"run-{name}-wikitext", data_dir, cache, "wikitext", 2)
    return {"root": root, "base_model": tiny_model_dir, "sft_model": sft, "cache": cache, "data_dir": data_dir, **runs}


@pytest.fixture
def runs_copy(report_inputs, tmp_path) -> dict:
    """Copies of the two runs a test may change."""
    return {k: Path(shutil.copytree(report_inputs[k], tmp_path / k))
            for k in ("base_run", "sft_run", "base_wikitext", "sft_wikitext")}


def build(inputs: dict, out: Path, *extra) -> int:
    runs = [inputs[k] for k in ("base_run", "base_wikitext", "sft_run", "sft_wikitext")]
    return main(["report", *map(str, runs), *map(str, extra), "-o", str(out), "--resamples", "500"])


@pytest.fixture(scope="session")
def report(report_inputs, tmp_path_factory) -> dict:
    """A report from copies of the real runs, one SQuAD answer replaced by an HTML/JS payload."""
    root = tmp_path_factory.mktemp("report")
    inputs = {k: Path(shutil.copytree(report_inputs[k], root / k))
              for k in ("base_run", "base_wikitext", "sft_run", "sft_wikitext")}
    payload_doc = plant_payload(inputs["sft_run"])
    compare = comparison(root / "compare", inputs["base_run"], inputs["sft_run"])
    out = root / "report.html"
    assert build(inputs, out, "--compare", compare) == 0
    return {"path": out, "html": out.read_text(encoding="utf-8"), "payload_doc": payload_doc, "inputs": inputs,
            "compare": compare}
