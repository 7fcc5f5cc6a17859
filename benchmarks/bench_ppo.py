"""evalsuite's PPO trainer against the same trainer with its rollouts made by plain transformers
``generate``, side by side in one invocation.

TRL's PPO trainer (``trl.experimental.ppo``, TRL 1.12) is not installed in this project's
environment, so the reference is the usual baseline of RLHF code without a generation engine: a
left-padded batch through ``model.generate(do_sample=True)``, then one forward pass per model over
the padded sequences. Both children run ``evalsuite train ppo`` with the same policy, reward model,
prompts, response length, batch sizes, PPO epochs and seed; in the baseline child only
``rollout.sample`` is replaced (scoring, advantages and updates are the same code), so the
difference is the generation engine: evalsuite's continuous batching, shared-prefix prefill and
per-row cache drop, against ``generate``'s fixed batch that runs until its longest row ends.

    python benchmarks/bench_ppo.py --policy ckpt/sft --reward ckpt/rm --steps 3 --batch-size 8

Reported per child: episodes/s and generated tokens/s (from the run's own log, summed over its
steps), the mean response length, wall seconds (loading included) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPT_FILES = ("hh_rlhf/helpful-base/test.jsonl.gz", "stanford_alpaca/seed_tasks.jsonl")


def hf_sample(engine, prompts, seeds, max_tokens, temperature, top_p):
    """The baseline's rollout: one left-padded ``generate`` call per batch of prompts."""
    import torch

    from evalsuite.trainers.rollout import Episodes

    model, tokenizer = engine.model, engine.tokenizer
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    responses, ended, texts = [], [], []
    model.eval()
    for start in range(0, len(prompts), engine.batch_size):
        chunk = prompts[start : start + engine.batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        torch.manual_seed(seeds[start] % 2**63)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                                 top_p=top_p, top_k=0, max_new_tokens=max_tokens, pad_token_id=pad)
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in eos), None)
            tokens = row if cut is None else row[: cut + 1]
            responses.append(tokens)
            ended.append(cut is not None)
            texts.append(tokenizer.decode(tokens, skip_special_tokens=True))
    return Episodes(list(prompts), responses, ended, texts)


def child(kind: str, argv: list[str]) -> int:
    from evalsuite.trainers import ppo, rollout
    from evalsuite.trainers.config import PPOConfig, resolve

    if kind == "baseline":
        rollout.sample = hf_sample
    return ppo.train(resolve(PPOConfig, argv, "bench"))


def summarise(folder: Path) -> dict:
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    seconds = sum(r["seconds"] for r in log)
    return {"episodes_per_s": sum(r["episodes"] for r in log) / seconds,
            "gen_tokens_per_s": sum(r["generated_tokens"] for r in log) / sum(r["gen_seconds"] for r in log),
            "response_length": sum(r["response_length"] for r in log) / len(log),
            "step_seconds": seconds / len(log), "gen_share": sum(r["gen_seconds"] for r in log) / seconds}


def main() -> int:
    if "--child" in sys.argv:
        kind = sys.argv[sys.argv.index("--child") + 1]
        return child(kind, sys.argv[sys.argv.index("--") + 1 :])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True)
    parser.add_argument("--reward", required=True)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EVALSUITE_DATA", "../shared/data")))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mini-batch-size", type=int, default=4)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--response-length", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("evalsuite", "baseline"):
            out = Path(tmp) / kind
            argv = ["--policy", args.policy, "--reward", args.reward, "--output", str(out), "--split", "heldout",
                    "--overlong", "skip", "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
                    "--mini-batch-size", str(args.mini_batch_size), "--ppo-epochs", str(args.ppo_epochs),
                    "--response-length", str(args.response_length), "--max-length", str(args.max_length),
                    "--save-every", "0", "--sample-every", "0", "--device", "cpu"]
            for f in PROMPT_FILES:
                argv += ["--prompts", str(args.data_dir / f)]
            run = measure_rss(kind, argv, args.threads)
            results[kind] = summarise(out) | run
    print(f"{'':<22}{'evalsuite':>12}{'baseline':>12}{'ratio':>8}")
    for key in ("episodes_per_s", "gen_tokens_per_s", "response_length", "step_seconds", "wall_seconds",
                "peak_rss_mib"):
        a, b = results["evalsuite"][key], results["baseline"][key]
        ratio = a / b if key.endswith("_per_s") else b / a  # above 1: evalsuite is faster (or smaller)
        print(f"{key:<22}{a:>12.2f}{b:>12.2f}" + ("" if key == "response_length" else f"{ratio:>8.2f}"))
    print(json.dumps(results, indent=1))
    return 0


def measure_rss(kind: str, argv: list[str], threads: int) -> dict:
    """Wall seconds and peak resident memory of the child, from ``os.wait4``."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    started = time.time()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", kind, "--", *argv], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        if status:
            err.seek(0)
            raise SystemExit(f"{kind} failed:\n{err.read()[-3000:]}")
    return {"wall_seconds": time.time() - started, "peak_rss_mib": usage.ru_maxrss / 1024}


if __name__ == "__main__":
    sys.exit(main())
