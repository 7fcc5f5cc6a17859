"""HH-RLHF's human comparisons as two outputs files and a labels file, for ``evalsuite compare``.

Each HH-RLHF comparison is a dialogue with two final replies, one of which people preferred. This
writes the preferred replies as one outputs file (``chosen.jsonl``), the others as a second
(``rejected.jsonl``), and the human verdicts as an AlpacaEval annotations file (``labels.json``:
instruction, output_1, output_2, preference), the two replies in a seeded random order so that
matching by text, not by position, is what finds them. Then

    evalsuite compare --prompts hh_rlhf --limit 50 --model DIR/chosen.jsonl --baseline DIR/rejected.jsonl \\
        --judge labels:DIR/labels.json                       # the human verdicts (chosen wins every pair)
    evalsuite compare ... --judge lm:default --agreement-with DIR/labels.json   # a judge against them

A dialogue that occurs twice keeps its first comparison (outputs files hold one output per prompt).

    python demo/hh_pairs.py --limit 50 --output DIR
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from evalsuite.fileio import atomic_write_json, atomic_write_jsonl
from evalsuite.tasks import pairwise_winrate as pw


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="folder for chosen.jsonl, rejected.jsonl and labels.json")
    parser.add_argument("--limit", type=int, default=None, help="the first N comparisons (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the two replies in labels.json")
    parser.add_argument("--data-dir", default=None, help="datasets folder (default: EVALSUITE_DATA)")
    return parser.parse_args(argv)


def comparisons(data_dir, limit: int | None) -> list[dict]:
    """The HH-RLHF comparisons ``--prompts hh_rlhf`` reads, one per distinct dialogue."""
    seen, docs = set(), []
    for doc in pw.load_prompt_set("hh_rlhf", data_dir).docs:
        if pw.norm(doc["prompt"]) not in seen:
            seen.add(pw.norm(doc["prompt"]))
            docs.append(doc)
    return docs[:limit]


def label(doc: dict, rng: random.Random) -> dict:
    chosen_first = rng.random() < 0.5
    first, second = (doc["chosen"], doc["rejected"]) if chosen_first else (doc["rejected"], doc["chosen"])
    return {"instruction": doc["prompt"], "output_1": first, "output_2": second, "preference": 1 if chosen_first else 2}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    docs = comparisons(args.data_dir, args.limit)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for side in ("chosen", "rejected"):
        atomic_write_jsonl(out / f"{side}.jsonl", ({"prompt": d["prompt"], "output": d[side]} for d in docs))
    rng = random.Random(args.seed)
    atomic_write_json(out / "labels.json", [label(d, rng) for d in docs])
    print(f"{len(docs)} comparisons -> {out}/chosen.jsonl, rejected.jsonl, labels.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
