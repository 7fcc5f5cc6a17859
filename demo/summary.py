"""The demo's closing tables: every checkpoint's primary metrics with standard errors beside its
base's, what each training stage logged (PPO: first and final score, final KL), and the held-out
reward table ``demo/rewards.py`` wrote.

    python demo/summary.py [--rewards rewards.json] RUN...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # rewards.py beside it prints its own table

from rewards import table as reward_table  # noqa: E402

from evalsuite.errors import EvalsuiteError  # noqa: E402
from evalsuite.reports.checkpoints import Checkpoint, group_runs  # noqa: E402


def cell(ckpt: Checkpoint, key: str) -> str:
    task = ckpt.task(key)
    if task is None:
        return "-"
    value, se = task.metrics[task.primary_metric], task.stderr.get(task.primary_metric)
    return f"{value:.3f} ± {se:.3f}" if se is not None else f"{value:.3f}"


def metrics_table(checkpoints: list[Checkpoint]) -> str:
    keys = list(dict.fromkeys(k for c in checkpoints for k in c.task_keys()))
    head = f"{'task (primary metric)':<40}" + "".join(f"{c.stage:>20}" for c in checkpoints)
    lines = ["primary metrics ± standard error (n documents per task as limited)", head]
    for key in keys:
        task = next(c.task(key) for c in checkpoints if c.task(key))
        name = f"{key} ({task.primary_metric})"[:40]
        lines.append(f"{name:<40}" + "".join(f"{cell(c, key):>20}" for c in checkpoints))
    return "\n".join(lines)


def read_manifest(folder: str) -> dict | None:
    file = Path(folder) / "evalsuite_manifest.json"
    return json.loads(file.read_text()) if file.is_file() else None


def manifests(checkpoints: list[Checkpoint]) -> list[dict]:
    """Every trained checkpoint's manifest, with the reward model the PPO stages name as a parent."""
    found = {}
    for ckpt in checkpoints:
        mine = read_manifest(str(ckpt.lineage[-1].get("path", "")))
        reward = [p["path"] for p in (mine or {}).get("parents", []) if p["role"] == "reward"]
        for folder, manifest in [(p, read_manifest(p)) for p in reward] + [(ckpt.name, mine)]:
            if manifest:
                found.setdefault(folder, manifest)
    return sorted(found.values(), key=lambda m: ["sft", "rm", "ppo", "ppo-ptx"].index(m["stage"]))


def facts(m: dict, stage: str) -> str:
    """What one stage's manifest says it reached."""
    if stage == "sft":
        return f"valid loss {m['valid_loss_first']:.3f} -> {m['valid_loss']:.3f} ± {m['valid_loss_stderr']:.3f}"
    if stage == "rm":
        return (f"valid accuracy {m['valid_accuracy']:.3f} ± {m['valid_accuracy_stderr']:.3f} "
                f"({m['valid_accuracy_n']} pairs), length-balanced {m['valid_accuracy_length_balanced']:.3f}, "
                f"longer wins {m['valid_longer_wins']:.3f}")
    return (f"score {m['first_score_mean']:.3f} (step 1: the SFT policy) -> {m['final_score_mean']:.3f} "
            f"(last step, other prompts), final KL {m['final_kl']:.3f}")


def training_table(checkpoints: list[Checkpoint]) -> str:
    lines = ["training (from each checkpoint's manifest)"]
    for m in manifests(checkpoints):
        lines.append(f"{m['stage']:<8} {m.get('steps', 0):>4} steps {m.get('wall_seconds', 0):>7.0f} s wall   "
                     + facts(m.get("metrics", {}), m["stage"]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--rewards", help="the JSON demo/rewards.py wrote")
    args = parser.parse_args(argv)
    try:
        checkpoints = group_runs(args.runs)
    except EvalsuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(metrics_table(checkpoints), training_table(checkpoints), sep="\n\n")
    if args.rewards and Path(args.rewards).is_file():
        print("\n" + reward_table(json.loads(Path(args.rewards).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
