"""Small data files and runs shared by the trainer tests."""

from __future__ import annotations

import json
from pathlib import Path

DEMOS = [
    {"instruction": "Name a primary colour.", "output": "Red."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Say hello in French.", "output": "Bonjour."},
    {"instruction": "What is the capital of Italy?", "output": "Rome."},
    {"instruction": "Reverse the word.", "input": "stop", "output": "pots"},
    {"instruction": "Give an antonym.", "input": "hot", "output": "cold"},
    {"instruction": "Count to three.", "output": "1, 2, 3."},
    {"instruction": "Is water wet?", "output": "Yes."},
]

PAIRS = [{"prompt": f"Question {i}: is {i} even?", "chosen": "Yes, good answer." if i % 2 == 0 else "No, good answer.",
          "rejected": "whatever"} for i in range(12)]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "evalsuite_manifest.json").read_text())


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
