"""The reward model's mean score of each policy's responses to the same held-out prompts, and each
policy's KL to the first one (the SFT policy).

PPO's log holds the score of each step's own batch, so its first step measures the SFT policy on
other prompts than its last step measures PPO. Here every policy answers the same prompts: held-out
prompts (``--split heldout``) that no stage trained on (the ``--skip`` PPO used come first), one
response each, sampled as PPO samples (temperature 1, a seed per prompt, the same for every policy),
scored by the reward model at the response's end. KL is PPO's k1 estimate, the sum over the response
of log pi - log pi_SFT. Writes ``--output`` (JSON) and prints the table.

    python demo/rewards.py --reward RM --prompts FILE --skip 48 --limit 32 --output r.json SFT PPO PPO-PTX
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import atomic_write_json
from evalsuite.models.chat import use_chat_template
from evalsuite.models.hf import HFModel
from evalsuite.models.loading import load_tokenizer, load_weights, resolve_device, resolve_model_path
from evalsuite.trainers import rollout
from evalsuite.trainers.formats import load_all
from evalsuite.trainers.modeling import pad_token_id
from evalsuite.trainers.splits import select


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="causal-LM checkpoints; the first is the KL reference (SFT)")
    parser.add_argument("--reward", required=True)
    parser.add_argument("--prompts", action="append", required=True)
    parser.add_argument("--skip", type=int, default=0, help="held-out prompts to pass over (PPO trained on them)")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--response-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", required=True)
    return parser.parse_args(argv)


def held_out_prompts(args, tokenizer, use_template: bool) -> list[list[int]]:
    """The prompts PPO's own encoding gives (same files, split and window), after the first ``--skip``."""
    prompts = [p for f in load_all(args.prompts, "prompts") for p in select(f.examples, "heldout")]
    ids, _ = rollout.encode_prompts(tokenizer, prompts, use_template, args.max_length - args.response_length, "skip")
    chosen = ids[args.skip : args.skip + args.limit]
    if not chosen:
        raise EvalsuiteError(f"No held-out prompt is left after the first {args.skip}.",
                             "give more prompt files, or lower --skip")
    return chosen


def load_policy(spec: str, device):
    return load_weights(resolve_model_path(spec, "policy"), "causal", torch.float32, False, "policy").to(device).eval()


@torch.no_grad()
def answer(model, tokenizer, prompts, args) -> rollout.Episodes:
    engine = HFModel.around(model, tokenizer, args.batch_size, args.max_length, False)
    seeds = [rollout.episode_seed(args.seed, 0, i) for i in range(len(prompts))]
    return rollout.sample(engine, prompts, seeds, args.response_length, 1.0, 1.0)


@torch.no_grad()
def log_probs(model, tokens: rollout.Tokens) -> torch.Tensor:
    """(B,): the summed log-probability of each response under ``model``."""
    return rollout.token_logprobs(model, tokens)[0].sum(1)


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else float("nan")
    return mean, math.sqrt(var / n)


def measure(args) -> dict:
    device = resolve_device(args.device)
    tokenizer = load_tokenizer(resolve_model_path(args.policies[0], "policy"))
    use_template = use_chat_template(tokenizer, "auto", args.policies[0])
    prompts = held_out_prompts(args, tokenizer, use_template)
    pad_id = pad_token_id(tokenizer)
    layout = rollout.Layout(pad_id)  # one padded row per episode
    scorer = rollout.RewardScorer(load_weights(resolve_model_path(args.reward, "--reward"), "reward", torch.float32,
                                               False, "--reward").to(device).eval(), args.batch_size, layout)
    reference = load_policy(args.policies[0], device)
    rows, first_scores = {}, None
    for spec in args.policies:
        model = reference if spec == args.policies[0] else load_policy(spec, device)
        episodes = answer(model, tokenizer, prompts, args)
        tokens = layout(episodes).to(device)
        with torch.no_grad():
            scores = scorer(episodes, tokens).tolist()
        kl = (log_probs(model, tokens) - log_probs(reference, tokens)).tolist()
        first_scores = first_scores or scores
        gain = [s - f for s, f in zip(scores, first_scores)]
        rows[spec] = {"score": mean_se(scores), "gain_over_first": mean_se(gain), "kl": mean_se(kl),
                      "response_length": sum(len(r) for r in episodes.responses) / len(prompts),
                      "ended": sum(episodes.ended) / len(prompts), "n": len(prompts),
                      "samples": [{"response": t, "score": s} for t, s in zip(episodes.texts[:3], scores)]}
    return {"reward": args.reward, "prompts": args.prompts, "skip": args.skip, "policies": rows}


def table(result: dict) -> str:
    lines = [f"reward-model score on {next(iter(result['policies'].values()))['n']} held-out prompts "
             "(the same prompts and seeds for every policy; KL to the first)",
             f"{'policy':<40} {'score':>16} {'minus first':>16} {'KL':>16} {'length':>7} {'ended':>6}"]
    for spec, row in result["policies"].items():
        cells = [f"{m:.3f} ± {se:.3f}" for m, se in (row["score"], row["gain_over_first"], row["kl"])]
        lines.append(f"{spec[-40:]:<40} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} "
                     f"{row['response_length']:>7.1f} {row['ended']:>6.0%}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        result = measure(args)
    except EvalsuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.output), result)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
