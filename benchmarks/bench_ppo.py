"""evalsuite's PPO trainer against TRL 1.12's PPO trainer and against a plain transformers
``generate`` rollout, side by side in one invocation.

Three children, one after the other, each a fresh measured process on the same policy, reward
model, prompts (the same token ids, in the same batches), response length, batch sizes, PPO epochs,
learning rate, KL coefficient, missing-EOS penalty, value-loss weight and clip ranges:

- ``evalsuite``: ``evalsuite train ppo``; rollouts from evalsuite's generation engine (continuous
  batching, shared-prefix prefill, per-row cache drop), then one packed pass per model per batch.
- ``trl``: TRL's ``trl.experimental.ppo.PPOTrainer`` (TRL 1.12, the last release with it), run in
  its own environment (``--trl-python``): ``generate`` over the left-padded batch, then one padded
  forward pass per model, value model and reward model separate from the policy as in evalsuite.
- ``baseline`` (``--no-baseline`` leaves it out): ``evalsuite train ppo`` with only
  ``rollout.sample`` replaced by one left-padded ``model.generate`` call per batch, so that the
  difference to the first child is the generation engine alone.

    python benchmarks/bench_ppo.py --policy ckpt/sft --reward ckpt/rm --steps 3 --batch-size 8

Reported per child: episodes/s (episodes over the seconds of the training loop), generated tokens/s
(response tokens, EOS included, over the seconds spent generating), the mean response length, the
seconds of a rollout step, wall seconds (loading included) and peak RSS (``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPT_FILES = ("hh_rlhf/helpful-base/test.jsonl.gz", "stanford_alpaca/seed_tasks.jsonl")
SEED = 1234
# the settings every child uses (evalsuite's defaults where the trainers differ)
LR, KL_COEF, EOS_PENALTY, VALUE_COEF, CLIP, VALUE_CLIP, LAMBDA = 3e-6, 0.02, 1.0, 0.1, 0.2, 0.2, 0.95


# --- the parent: prompts, children, table -----------------------------------------------------------


def prepare_prompts(args, tmp: Path) -> tuple[Path, Path, int]:
    """The held-out prompts all three children train on, in order: a prompt file for evalsuite and
    the same token ids (chat template applied by evalsuite's encoder) for TRL."""
    from common import write_jsonl

    from evalsuite.models.chat import use_chat_template
    from evalsuite.models.loading import load_tokenizer, resolve_model_path
    from evalsuite.trainers.formats import load
    from evalsuite.trainers.modeling import reward_pad_token
    from evalsuite.trainers.rollout import encode_prompts
    from evalsuite.trainers.splits import select

    policy = resolve_model_path(args.policy)
    tokenizer = load_tokenizer(policy)
    prompts = [p for f in PROMPT_FILES for p in select(load(str(args.data_dir / f), "prompts").examples, "heldout")]
    use_template = use_chat_template(tokenizer, "auto", policy)
    room = args.max_length - args.response_length
    ids, skipped = encode_prompts(tokenizer, prompts, use_template, room, "skip")
    kept = [p for p in prompts if p.where not in set(skipped)][: args.steps * args.batch_size]
    ids = ids[: len(kept)]
    write_jsonl(tmp / "prompts.jsonl", [{"prompt": p.prompt} for p in kept])
    write_jsonl(tmp / "trl_prompts.jsonl", [{"input_ids": t} for t in ids])
    return tmp / "prompts.jsonl", tmp / "trl_prompts.jsonl", reward_pad_token(tokenizer)[1]


def evalsuite_argv(args, prompts: Path, out: Path) -> list[str]:
    return ["--policy", args.policy, "--reward", args.reward, "--output", str(out), "--prompts", str(prompts),
            "--split", "all", "--no-shuffle", "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
            "--mini-batch-size", str(args.mini_batch_size), "--ppo-epochs", str(args.ppo_epochs),
            "--response-length", str(args.response_length), "--max-length", str(args.max_length),
            "--lr", str(LR), "--kl-coef", str(KL_COEF), "--missing-eos-penalty", str(EOS_PENALTY),
            "--value-coef", str(VALUE_COEF), "--clip-range", str(CLIP), "--value-clip", str(VALUE_CLIP),
            "--gae-lambda", str(LAMBDA), "--seed", str(SEED), "--save-every", "0", "--sample-every", "0",
            "--device", "cpu"]


def evalsuite_summary(folder: Path) -> dict:
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    seconds = sum(r["seconds"] for r in log)
    return {"steps": len(log), "episodes": sum(r["episodes"] for r in log), "train_s": seconds,
            "generated_tokens": sum(r["generated_tokens"] for r in log), "gen_s": sum(r["gen_seconds"] for r in log),
            "scores": [round(r["score_mean"], 4) for r in log]}


def rates(side: dict) -> dict:
    return side | {"episodes_per_s": side["episodes"] / side["train_s"],
                   "gen_tokens_per_s": side["generated_tokens"] / side["gen_s"],
                   "response_length": side["generated_tokens"] / side["episodes"],
                   "step_s": side["train_s"] / side["steps"], "gen_share": side["gen_s"] / side["train_s"]}


def measured(command: list[str], threads: int, log: Path) -> dict:
    """Wall seconds and peak resident memory of one child (``common.measure``: ``os.wait4``)."""
    from common import measure, report_run

    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
                        "TOKENIZERS_PARALLELISM": "false"}
    run = measure(command, env, log, live=False)
    if not report_run(command[3], "child", run, run.returncode == 0, live=False):
        sys.exit(f"child failed: {' '.join(command[:4])} ...")
    return {"wall_s": round(run.wall_s, 1), "peak_rss_mib": round(run.peak_rss_mib)}


def run_all(args, tmp: Path) -> dict:
    from evalsuite.models.loading import resolve_model_path

    prompts, trl_prompts, pad_id = prepare_prompts(args, tmp)
    results = {}
    kinds = ["evalsuite", "trl"] + ([] if args.no_baseline else ["baseline"])
    for kind in kinds:
        out = tmp / kind
        if kind == "trl":
            command = [args.trl_python, __file__, "--child", "trl", "--", json.dumps({
                "policy": resolve_model_path(args.policy), "reward": resolve_model_path(args.reward),
                "prompts": str(trl_prompts), "out": str(out), "pad_id": pad_id, "steps": args.steps,
                "batch_size": args.batch_size, "mini_batch_size": args.mini_batch_size,
                "ppo_epochs": args.ppo_epochs, "response_length": args.response_length})]
            run = measured(command, args.threads, tmp / f"{kind}.log")
            results[kind] = rates(json.loads((out / "summary.json").read_text())) | run
        else:
            run = measured([sys.executable, __file__, "--child", kind, "--", *evalsuite_argv(args, prompts, out)],
                           args.threads, tmp / f"{kind}.log")
            results[kind] = rates(evalsuite_summary(out)) | run
    return results


def print_table(results: dict) -> None:
    kinds = list(results)
    print(f"{'':<20}" + "".join(f"{k:>12}" for k in kinds) + "".join(f"{'es/' + k:>14}" for k in kinds[1:]))
    for key in ("episodes_per_s", "gen_tokens_per_s", "response_length", "step_s", "gen_share", "wall_s",
                "peak_rss_mib"):
        values = [results[k][key] for k in kinds]
        # ratios above 1: evalsuite is faster (rates) or smaller (seconds, memory)
        ratios = [values[0] / v if key.endswith("_per_s") else v / values[0] for v in values[1:]]
        shown = "" if key in ("response_length", "gen_share") else "".join(f"{r:>14.2f}" for r in ratios)
        print(f"{key:<20}" + "".join(f"{v:>12.2f}" for v in values) + shown)


# --- the children ----------------------------------------------------------------------------------


def hf_sample(engine, prompts, seeds, max_tokens, temperature, top_p):
    """The baseline's rollout: one left-padded ``generate`` call per batch of prompts."""
    import torch

    from evalsuite.trainers.modeling import pad_token_id
    from evalsuite.trainers.rollout import Episodes

    model, tokenizer = engine.model, engine.tokenizer
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    pad = pad_token_id(tokenizer)
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


def evalsuite_child(kind: str, argv: list[str]) -> int:
    from evalsuite.trainers import ppo, rollout
    from evalsuite.trainers.config import PPOConfig, resolve

    if kind == "baseline":
        rollout.sample = hf_sample
    return ppo.train(resolve(PPOConfig, argv, "bench"))


def trl_child(spec: dict) -> None:
    """TRL 1.12's PPO trainer on the same prompt token ids; generation is timed by wrapping its
    ``batch_generation`` (the computation is unchanged)."""
    import datasets
    import torch
    import trl
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer, ppo_trainer

    tokenizer = AutoTokenizer.from_pretrained(spec["policy"], padding_side="left")
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(spec["pad_id"])  # the reward model's pad, not EOS
    timing = {"gen_s": 0.0, "generated_tokens": 0}
    generate = ppo_trainer.batch_generation

    def timed_generation(model, queries, *rest):
        started = time.perf_counter()
        query_responses, logits = generate(model, queries, *rest)
        timing["gen_s"] += time.perf_counter() - started
        responses = query_responses[:, queries.shape[1]:]
        for row in responses.tolist():  # tokens up to and including the first EOS, as evalsuite counts them
            timing["generated_tokens"] += next((i + 1 for i, t in enumerate(row) if t == tokenizer.eos_token_id),
                                               sum(t != tokenizer.pad_token_id for t in row))
        return query_responses, logits

    ppo_trainer.batch_generation = timed_generation
    data = datasets.load_dataset("json", data_files=spec["prompts"], split="train")
    episodes = spec["steps"] * spec["batch_size"]
    config = PPOConfig(
        output_dir=str(Path(spec["out"]) / "trl-out"), total_episodes=episodes, seed=SEED,
        per_device_train_batch_size=spec["batch_size"], gradient_accumulation_steps=1,
        num_mini_batches=spec["batch_size"] // spec["mini_batch_size"], local_rollout_forward_batch_size=spec[
            "batch_size"], num_ppo_epochs=spec["ppo_epochs"], response_length=spec["response_length"],
        stop_token="eos", temperature=1.0, missing_eos_penalty=EOS_PENALTY, kl_coef=KL_COEF, kl_estimator="k1",
        vf_coef=VALUE_COEF, cliprange=CLIP, cliprange_value=VALUE_CLIP, gamma=1.0, lam=LAMBDA,
        whiten_rewards=False, learning_rate=LR, lr_scheduler_type="constant", optim="adamw_torch_fused",
        adam_beta2=0.95, weight_decay=0.0, num_sample_generations=0, use_cpu=True, bf16=False, fp16=False,
        gradient_checkpointing=False, report_to="none", save_strategy="no", logging_steps=1,
        dataloader_num_workers=0)
    dtype = torch.float32
    policy = AutoModelForCausalLM.from_pretrained(spec["policy"], dtype=dtype)
    ref = AutoModelForCausalLM.from_pretrained(spec["policy"], dtype=dtype)
    reward = AutoModelForSequenceClassification.from_pretrained(spec["reward"], dtype=dtype, num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(spec["reward"], dtype=dtype, num_labels=1)
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=ref, reward_model=reward,
                         value_model=value, train_dataset=data, eval_dataset=data.select(range(1)))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    scores = [round(r["objective/scores"], 4) for r in trainer.state.log_history if "objective/scores" in r]
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(timing | {
        "steps": spec["steps"], "episodes": episodes, "train_s": seconds, "scores": scores, "trl": trl.__version__}))


def main() -> int:
    if "--child" in sys.argv:
        kind, rest = sys.argv[sys.argv.index("--child") + 1], sys.argv[sys.argv.index("--") + 1 :]
        return trl_child(json.loads(rest[0])) if kind == "trl" else evalsuite_child(kind, rest)
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
    parser.add_argument("--trl-python", default=str(REPO / ".venv-bench-trl112/bin/python"))
    parser.add_argument("--no-baseline", action="store_true", help="leave the generate-rollout child out")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalsuite-bench-ppo-") as tmp:
        results = run_all(args, Path(tmp))
    print_table(results)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
