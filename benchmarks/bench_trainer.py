"""evalsuite's trainer against TRL's SFTTrainer and RewardTrainer, side by side in one invocation.

Both trainers get the same model, the same token sequences in the same order, the same batch,
maximum length, steps, learning-rate schedule (no warm-up, cosine to 10%), optimizer (fused AdamW,
betas 0.9/0.95), clipping and float32 on the CPU, and run as separate measured child processes.
The token sequences are made once, by evalsuite's own encoders, and handed to TRL already tokenised
(its ``input_ids``/``completion_mask`` and ``chosen_ids``/``rejected_ids`` columns), so the loss
curves can be compared step by step. The reward model starts from the same initial weights in both
(the score head evalsuite's trainer would create, saved once). TRL runs without gradient
checkpointing (its default is on; evalsuite's off) so that both do the same work.

    python benchmarks/bench_trainer.py --stage both --steps 20 --batch-size 8 --max-length 512

Reported per stage: training tokens/s (tokens of the sequences trained on, per second of the
training loop; the same tokens for both, so the ratio is the ratio of training times), wall seconds
of each child (loading and saving included), peak RSS, and the loss of every step.
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
SFT_FILES = ("stanford_alpaca/seed_tasks.jsonl", "self_instruct/user_oriented_instructions.jsonl")
RM_FILES = ("hh_rlhf/helpful-base/test.jsonl.gz", "hh_rlhf/harmless-base/test.jsonl.gz")
SEED = 1234


# --- the parent: data, children, table ------------------------------------------------------------


def shuffled(examples: list, n: int) -> list:
    import numpy as np

    order = np.random.default_rng(SEED).permutation(len(examples))[:n]
    return [examples[i] for i in order]


def prepare_sft(args, tmp: Path, model_dir: str) -> tuple[list[str], dict]:
    """The demonstrations both trainers see, in order: a file for evalsuite, token ids for TRL."""
    from evalsuite.models.chat import use_chat_template
    from evalsuite.models.loading import load_tokenizer
    from evalsuite.trainers.formats import load
    from evalsuite.trainers.sft import encode
    from evalsuite.trainers.splits import select

    tokenizer = load_tokenizer(model_dir)
    demos = [d for f in SFT_FILES for d in select(load(str(args.data_dir / f), "demonstrations").examples, "train")]
    encoded = encode(tokenizer, demos, use_chat_template(tokenizer, "auto", model_dir), args.max_length, "skip")
    keep = [i for i, d in enumerate(demos) if d.where not in set(encoded.skipped)]
    pairs = shuffled(list(zip([demos[i] for i in keep], encoded.trees)), args.steps * args.batch_size)
    rows = [{"prompt": d.prompt, "response": d.response} for d, _ in pairs]
    trl_rows = [{"input_ids": list(t.prefix + t.branches[0]),
                 "completion_mask": [0] * len(t.prefix) + [1] * len(t.branches[0])} for _, t in pairs]
    write_jsonl(tmp / "demos.jsonl", rows)
    write_jsonl(tmp / "trl_sft.jsonl", trl_rows)
    tokens = sum(len(r["input_ids"]) for r in trl_rows)
    evalsuite = ["-m", "evalsuite", "train", "sft", "--model", model_dir, "--data", str(tmp / "demos.jsonl"),
                 "--lr", "2e-5"]
    return evalsuite, {"tokens": tokens, "examples": len(rows), "data": str(tmp / "trl_sft.jsonl"), "model": model_dir}


def prepare_rm(args, tmp: Path, model_dir: str) -> tuple[list[str], dict]:
    """Comparisons (K=2) for both, and the initial reward model TRL starts from."""
    import torch

    from evalsuite.models.chat import use_chat_template
    from evalsuite.models.loading import load_tokenizer, load_weights
    from evalsuite.trainers import modeling
    from evalsuite.trainers.formats import load
    from evalsuite.trainers.rm import encode
    from evalsuite.trainers.splits import select

    tokenizer = load_tokenizer(model_dir)
    pad, pad_id = modeling.reward_pad_token(tokenizer)
    tokenizer.pad_token = pad
    comparisons = [c for f in RM_FILES for c in select(load(str(args.data_dir / f), "comparisons").examples, "train")]
    picked = shuffled(comparisons, args.steps * args.batch_size * 2)
    encoded = encode(tokenizer, picked, use_chat_template(tokenizer, "auto", model_dir), args.max_length, "skip")
    usable = [c for c in picked if c.where not in set(encoded.skipped)]  # encoded.trees are these, in order
    kept, trees = usable[: args.steps * args.batch_size], encoded.trees[: args.steps * args.batch_size]
    write_jsonl(tmp / "pairs.jsonl", [{"prompt": c.prompt, "chosen": c.responses[0], "rejected": c.responses[1]}
                                      for c in kept])
    trl_rows = [{"chosen_ids": list(t.prefix + t.branches[0]), "rejected_ids": list(t.prefix + t.branches[1])}
                for t in trees]
    write_jsonl(tmp / "trl_rm.jsonl", trl_rows)
    causal = load_weights(model_dir, "causal", torch.float32)
    torch.manual_seed(SEED)  # the same score head evalsuite's trainer creates from this seed
    init = modeling.reward_model_from(causal, pad_id)
    init.save_pretrained(tmp / "rm-init", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "rm-init")
    tokens = sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in trl_rows)
    evalsuite = ["-m", "evalsuite", "train", "rm", "--model", model_dir, "--data", str(tmp / "pairs.jsonl"),
                 "--lr", "1e-5"]
    return evalsuite, {"tokens": tokens, "examples": len(kept), "data": str(tmp / "trl_rm.jsonl"),
                       "model": str(tmp / "rm-init")}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def measured(command: list[str], env: dict) -> dict:
    """Wall seconds, peak RSS (MiB) and exit status of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"child failed: {' '.join(command)}\n{output[-3000:]}")
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def run_stage(stage: str, args, tmp: Path, model_dir: str, env: dict) -> dict:
    command, facts = (prepare_sft if stage == "sft" else prepare_rm)(args, tmp, model_dir)
    common = ["--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-length",
              str(args.max_length), "--no-shuffle", "--warmup-ratio", "0", "--no-eval-before", "--save-every", "0",
              "--device", "cpu", "--seed", str(SEED)]
    out = tmp / f"evalsuite-{stage}"
    ours = measured([str(REPO / ".venv/bin/python"), *command, *common, "--output", str(out)], env)
    manifest = json.loads((out / "evalsuite_manifest.json").read_text())
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    ours |= {"train_s": round(sum(r["seconds"] for r in log), 2), "losses": [round(r["loss"], 5) for r in log],
             "tokens": manifest["tokens"]}
    trl_out = tmp / f"trl-{stage}.json"
    trl = measured([args.trl_python, __file__, "--child", stage, "--child-data", facts["data"], "--child-model",
                    facts["model"], "--child-out", str(trl_out), "--steps", str(args.steps), "--batch-size",
                    str(args.batch_size), "--max-length", str(args.max_length)], env)
    trl |= json.loads(trl_out.read_text())
    for side in (ours, trl):
        side["tokens_per_s"] = round(facts["tokens"] / side["train_s"], 2)
    return {"stage": stage, "examples": facts["examples"], "tokens": facts["tokens"], "evalsuite": ours, "trl": trl,
            "speed_ratio": round(ours["tokens_per_s"] / trl["tokens_per_s"], 3),
            "memory_ratio": round(ours["peak_rss_mib"] / trl["peak_rss_mib"], 3)}


def print_table(results: list[dict]) -> None:
    print("\n| stage | examples | tokens | evalsuite tok/s | TRL tok/s | speed ratio | evalsuite train s | TRL train s "
          "| evalsuite wall s | TRL wall s | evalsuite peak MiB | TRL peak MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        a, b = r["evalsuite"], r["trl"]
        print(f"| {r['stage']} | {r['examples']} | {r['tokens']} | {a['tokens_per_s']} | {b['tokens_per_s']} | "
              f"{r['speed_ratio']}x | {a['train_s']} | {b['train_s']} | {a['wall_s']} | {b['wall_s']} | "
              f"{a['peak_rss_mib']} | {b['peak_rss_mib']} |")
    for r in results:
        print(f"\n{r['stage']} loss per step (evalsuite / TRL):")
        for step, (x, y) in enumerate(zip(r["evalsuite"]["losses"], r["trl"]["losses"]), start=1):
            print(f"  {step:>3}  {x:.5f}  {y:.5f}  diff {x - y:+.5f}")


# --- the TRL child (runs in the benchmark's own environment) --------------------------------------


def trl_child(args) -> None:
    import datasets
    import torch
    import trl
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    common = dict(output_dir=str(Path(args.child_out).parent / f"trl-{args.child}-out"), max_steps=args.steps,
                  per_device_train_batch_size=args.batch_size, max_length=args.max_length,
                  lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1}, warmup_steps=0,
                  adam_beta2=0.95, optim="adamw_torch_fused", max_grad_norm=1.0, weight_decay=0.0,
                  gradient_checkpointing=False, bf16=False, fp16=False, use_cpu=True, logging_steps=1,
                  save_strategy="no", report_to="none", seed=SEED, dataloader_num_workers=0)
    data = datasets.load_dataset("json", data_files=args.child_data, split="train")
    tokenizer = AutoTokenizer.from_pretrained(args.child_model)
    if args.child == "sft":
        model = AutoModelForCausalLM.from_pretrained(args.child_model, dtype=torch.float32)
        config, trainer_class = trl.SFTConfig(learning_rate=2e-5, completion_only_loss=True, **common), trl.SFTTrainer
    else:
        model = AutoModelForSequenceClassification.from_pretrained(args.child_model, dtype=torch.float32)
        config, trainer_class = trl.RewardConfig(learning_rate=1e-5, **common), trl.RewardTrainer

    class InOrder(trainer_class):  # the same order as evalsuite's --no-shuffle
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

    trainer = InOrder(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    started = time.perf_counter()
    metrics = trainer.train().metrics
    seconds = time.perf_counter() - started
    losses = [round(r["loss"], 5) for r in trainer.state.log_history if "loss" in r]
    Path(args.child_out).write_text(json.dumps({"train_s": round(seconds, 2), "trl_train_runtime": metrics.get(
        "train_runtime"), "losses": losses, "trl": trl.__version__}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("sft", "rm", "both"), default="both")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("EVALSUITE_DATA", REPO.parent / "shared/data")))
    parser.add_argument("--trl-python", default=str(REPO / ".venv-bench-trl/bin/python"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", choices=("sft", "rm"), help=argparse.SUPPRESS)
    parser.add_argument("--child-data", help=argparse.SUPPRESS)
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return trl_child(args)
    from evalsuite.models.loading import resolve_model_path

    model_dir = resolve_model_path(args.model)
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
                        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    stages = ("sft", "rm") if args.stage == "both" else (args.stage,)
    with tempfile.TemporaryDirectory(prefix="evalsuite-bench-trainer-") as tmp:
        results = [run_stage(stage, args, Path(tmp), model_dir, env) for stage in stages]
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
