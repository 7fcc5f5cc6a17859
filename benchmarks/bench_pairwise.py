"""The lm: pairwise judge against a plain transformers loop, side by side in one process.

Both judge the same AlpacaEval pairs (``--model-outputs`` against ``--baseline-outputs``, stored
outputs files from the data folder, so nothing is generated) in both orders with the same model,
template (``evalsuite.scorers.pairwise.lm_prompt``) and verdict tokens, and read the preference as
P(" A") / (P(" A") + P(" B")):

- evalsuite: ``LMPairJudge.prefer`` (the batched shared-prefix engine: the template's fixed
  instructions are computed once, pairs are batched by length);
- reference: the loop a user would write, one forward pass per (pair, order) prompt, batch size 1,
  both verdict log-probabilities read from the last position, on the same token ids (from
  ``HFModel.encode_pair``: the computation is compared, not the tokeniser).

Reports wall seconds of each (model load excluded, the same thread count), the ratio, and the
largest difference between the two sets of preferences (floor: 2x faster, within 1e-4). It also
reports the ceiling that exact prefix sharing allows on these pairs: the tokens the reference feeds,
the tokens left once every shared prefix is fed once (the template's instructions for all pairs,
the instruction for both orders of a pair), and the ratio of the linear layers' work the two do
(the reference also projects every position onto the vocabulary; evalsuite only the last). Long
outputs leave little to share, so that ceiling, not the engine, bounds the speedup.

    python benchmarks/bench_pairwise.py --pairs 200 --json bench-pairwise.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from evalsuite.models.shared_prefix import common_prefix_len
from evalsuite.scorers import pairwise as pj
from evalsuite.tasks import pairwise_winrate as pw


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("EVALSUITE_DATA"), help="default: $EVALSUITE_DATA")
    p.add_argument("--judge-model", default="default", help="the judge's causal LM (default: SmolLM2-135M)")
    p.add_argument("--model-outputs", default="gpt4_1106_preview", help="AlpacaEval results name or file")
    p.add_argument("--baseline-outputs", default="text_davinci_003", help="AlpacaEval results name or file")
    p.add_argument("--pairs", type=int, default=200, help="the first N prompts both files answer")
    p.add_argument("--max-chars", type=int, default=1500, help="outputs cut to this many characters (window)")
    p.add_argument("--batch-size", type=int, default=16, help="evalsuite's batch size")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    return p.parse_args()


def triples(args) -> list[pj.Triple]:
    """(prompt, model output, baseline output) then the same pair swapped, for the first N prompts."""
    docs = pw.load_prompt_set("alpaca_eval", args.data_dir).docs
    model, _, _ = pw.load_outputs(args.model_outputs, args.data_dir)
    base, _, _ = pw.load_outputs(args.baseline_outputs, args.data_dir)
    pairs = []
    for doc in docs:
        a, b = model.get(pw.norm(doc["prompt"])), base.get(pw.norm(doc["prompt"]))
        if a and b:
            pairs.append((doc["prompt"], a[: args.max_chars], b[: args.max_chars]))
        if len(pairs) == args.pairs:
            break
    return [t for p, a, b in pairs for t in ((p, a, b), (p, b, a))]


def reference_prefer(hf, items: list[pj.Triple]) -> list[float]:
    """One forward pass per prompt, batch size 1. The token ids come from ``HFModel.encode_pair``
    (what is compared is the computation, not the tokeniser); each verdict is one token."""
    model = hf.model
    out = []
    for item in items:
        context = pj.lm_prompt(*item)
        pairs = [hf.encode_pair(context, v) for v in pj.VERDICTS]
        assert all(len(r.seq) - r.ctx_len == 1 for r in pairs), "each verdict must be one token"
        assert pairs[0].seq[:-1] == pairs[1].seq[:-1], "the verdicts must share the context"
        with torch.inference_mode():
            logits = model(torch.tensor([pairs[0].seq[:-1]], device=model.device)).logits[0, -1].float()
        logp = torch.log_softmax(logits, -1)
        a, b = (logp[r.seq[-1]].item() for r in pairs)
        out.append(1.0 / (1.0 + math.exp(b - a)))
    return out


def work_ceiling(hf, items: list[pj.Triple]) -> dict:
    """Tokens fed by each side and the ideal speedup of the linear layers (attention left out)."""
    seqs = sorted(hf.encode_pair(pj.lm_prompt(*item), pj.VERDICTS[0]).seq[:-1] for item in items)
    fed = sum(len(s) for s in seqs)
    # Sorted, each sequence adds to the prefix trie only what its neighbour does not share.
    unique = len(seqs[0]) + sum(len(b) - common_prefix_len(a, b) for a, b in zip(seqs, seqs[1:]))
    head = hf.model.get_output_embeddings().weight.numel()
    body = sum(p.numel() for p in hf.base.parameters()) - hf.model.get_input_embeddings().weight.numel()
    ideal = fed * (body + head) / (unique * body + len(items) * head)
    return {"reference_tokens": fed, "evalsuite_tokens": unique, "token_ratio": round(fed / unique, 2),
            "ideal_speedup": round(ideal, 2)}


def main() -> int:
    args = parse()
    torch.set_num_threads(args.threads)
    items = triples(args)
    judge = pj.LMPairJudge(f"lm:{args.judge_model}", args.judge_model, device="cpu", batch_size=args.batch_size)
    hf = judge.model
    print(f"{len(items)} (pair, order) prompts, {args.threads} threads", file=sys.stderr)

    start = time.perf_counter()
    ref = reference_prefer(hf, items)
    ref_s = time.perf_counter() - start
    hf.forget_prefix()
    start = time.perf_counter()
    ours = judge.prefer(items)
    ours_s = time.perf_counter() - start

    diff = max(abs(a - b) for a, b in zip(ours, ref))
    agree = sum((a > 0.5) == (b > 0.5) for a, b in zip(ours, ref))
    report = {"benchmark": "pairwise_lm_judge", "prompts": len(items), "pairs": len(items) // 2,
              "threads": args.threads, "batch_size": args.batch_size, "evalsuite_s": round(ours_s, 2),
              "reference_s": round(ref_s, 2), "speedup": round(ref_s / ours_s, 2), "max_abs_diff": diff,
              "same_verdicts": agree, **work_ceiling(hf, items), "model_outputs": args.model_outputs,
              "baseline_outputs": args.baseline_outputs, "torch": torch.__version__}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
