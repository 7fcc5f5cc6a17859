"""``evalsuite train rm``: a reward model on ranked comparisons, InstructGPT's second stage; and
``evalsuite train rm --eval-only`` to score any reward checkpoint on comparisons.

Read top to bottom: each comparison's K dialogues (prompt + response + EOS, the text reward models
score everywhere in evalsuite) become one token tree, the prompt shared and one branch per
response, so a response runs once and a prompt once for all its responses; the reward is the score
head at each branch's last token (the response's EOS); the loss averages ``-log sigmoid(r_w - r_l)``
over the K-choose-2 pairs of a prompt (with ``--length-expert``, of ``-log sigmoid(r_w + a f_w - r_l -
a f_l)``, ``a f`` a fixed length expert). The saved checkpoint is a plain one-label
``AutoModelForSequenceClassification`` whose padding token differs from EOS, with the centring
offset of ``--demos`` in ``config.reward_offset``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from evalsuite.models.chat import dialogue_text, use_chat_template
from evalsuite.models.loading import load_weights
from evalsuite.models.reward import RewardModel, last_token_rewards, score_hidden
from evalsuite.models.shared_prefix import common_prefix_len
from evalsuite.trainers import batches, loop, modeling
from evalsuite.trainers.checkpoint import build_manifest, parent
from evalsuite.trainers.config import RMConfig, resolve
from evalsuite.trainers.dataset import gather, too_long
from evalsuite.trainers.formats import load_all
from evalsuite.trainers.losses import centring, fit_length_expert, length_feature, ranking_loss
from evalsuite.trainers.metrics import format_metrics, pairwise_metrics, ranked_pairs
from evalsuite.trainers.packing import Tree, cut_prefix
from evalsuite.trainers.splits import select

# --- comparisons as token trees ------------------------------------------------------------------


@dataclass
class Encoded:
    trees: list[Tree]
    lengths: list[list[int]]  # characters of each response, best first (for the length breakdown)
    truncated: int = 0
    skipped: list[str] = field(default_factory=list)


def encode(tokenizer, comparisons: list, use_template: bool, max_length: int, overlong: str = "error") -> Encoded:
    """One tree per comparison. Each dialogue is tokenised whole, as ``RewardModel`` reads it; the
    tokens all K share form the prefix, the rest of each is its branch (so the trees give exactly
    the rewards of separate passes). Over-long prompts lose their start (counted)."""
    texts = [dialogue_text(tokenizer, c.prompt, r, use_template) for c in comparisons for r in c.responses]
    ids = tokenizer(texts, add_special_tokens=False).input_ids if texts else []
    out, start = Encoded([], []), 0
    for comparison in comparisons:
        seqs = [tuple(s) for s in ids[start : start + len(comparison.responses)]]
        start += len(seqs)
        shared = min(min(common_prefix_len(seqs[0], s) for s in seqs[1:]), min(len(s) for s in seqs) - 1)
        branches = [s[shared:] for s in seqs]
        kept = cut_prefix(seqs[0][:shared], branches, max_length)
        if kept is None:
            out.skipped.append(too_long(comparison.where, max(len(b) for b in branches), max_length, overlong))
            continue
        out.truncated += len(kept) < shared
        out.trees.append(Tree(kept, tuple(branches)))
        out.lengths.append([len(r) for r in comparison.responses])
    return out


def single(tokenizer, demos: list, use_template: bool, max_length: int) -> list[Tree]:
    """Demonstrations as one-branch trees (their dialogue's last ``max_length`` tokens)."""
    if not demos:
        return []
    texts = [dialogue_text(tokenizer, d.prompt, d.response, use_template) for d in demos]
    return [Tree((), tuple([tuple(s[-max_length:])])) for s in tokenizer(texts, add_special_tokens=False).input_ids]


# --- the model: a reward per branch --------------------------------------------------------------


class BranchRewards(nn.Module):
    """A sequence classifier returning the reward of every branch of a batch: on packed rows, the
    score head at each branch's last token (``reward.score_hidden``); on padded rows, the core's
    ``last_token_rewards``, which reads each row's last real token."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self._no_split_modules = getattr(model, "_no_split_modules", None)  # FSDP wraps these blocks

    def forward(self, input_ids, attention_mask, rows, cols, position_ids=None):
        if attention_mask.dim() == 2:
            return last_token_rewards(self.model, input_ids, attention_mask)
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                       position_ids=position_ids, use_cache=False).last_hidden_state
        return score_hidden(self.model, hidden[rows, cols])


class RMStage:
    """What the shared loop needs from the reward model (see ``loop.Stage``)."""

    name = "rm"

    def __init__(self, train: Encoded, valid: Encoded, packed: bool, config, pad_id: int, attn: str):
        self.train, self.valid = train, valid
        self.packed, self.pad_id, self.attn = packed, pad_id, attn
        self.width, self.center_coef = config.max_length, config.center_coef
        self.eval_batch = config.eval_batch_size or 2 * config.batch_size
        self.has_valid = bool(valid.trees)
        self.expert = fit_length_expert(train.lengths) if config.length_expert else None

    def layout(self, trees: list[Tree]) -> batches.Batch:
        if self.packed:
            return batches.packed(trees, self.width, self.pad_id, self.attn, torch.float32)
        return batches.padded(trees, self.pad_id)

    def batch(self, indices: list[int]) -> batches.Batch:
        stand_in = Tree((self.pad_id,), ((self.pad_id,), (self.pad_id, self.pad_id)))  # an empty micro-batch
        batch = self.layout([self.train.trees[i] for i in indices] or [stand_in])
        batch.empty = not indices
        if self.expert is not None:
            lengths = [n for i in indices for n in self.train.lengths[i]] or [0, 0]
            batch.offsets = torch.tensor([self.expert * length_feature(n) for n in lengths])
        return batch

    def rewards(self, model, batch: batches.Batch) -> torch.Tensor:
        rows, cols = batches.branch_ends(batch)
        return model(**batch.model_inputs(), rows=rows, cols=cols)

    def loss(self, model, batch):
        rewards = self.rewards(model, batch)
        if batch.offsets is None:
            per_prompt, margin = ranking_loss(rewards, batch.sizes)
        else:  # trained through the length expert; accuracy is the reward model's own
            per_prompt, _ = ranking_loss(rewards + batch.offsets.to(rewards), batch.sizes)
            margin = ranking_loss(rewards.detach(), batch.sizes)[1]
        loss = per_prompt.sum()
        if self.center_coef:
            loss = loss + self.center_coef * centring(rewards, batch.sizes).sum()
        keep = 0.0 if batch.empty else 1.0
        correct = ((margin > 0).float() + 0.5 * (margin == 0).float()).sum()
        return loss * keep, {"correct": correct * keep, "pairs": torch.tensor(margin.numel() * keep).to(correct)}

    def weight(self, indices: list[int]) -> float:
        return float(len(indices))

    def evaluate(self, model, accelerator) -> dict:
        rewards = all_rewards(self, model, accelerator, self.valid.trees)
        metrics = pairwise_metrics(*ranked_pairs(rewards, self.valid.lengths))
        flat = {}
        for name, m in metrics.items():
            flat |= {f"valid_{name}": m["value"], f"valid_{name}_stderr": m["stderr"], f"valid_{name}_n": m["n"]}
        return flat

    @staticmethod
    def describe(record: dict) -> str:
        if "valid_accuracy" in record:
            se = record.get("valid_accuracy_stderr") or 0.0
            return (f"valid accuracy {record['valid_accuracy']:.4f} ± {se:.4f}, length-balanced "
                    f"{record['valid_accuracy_length_balanced']:.4f}, shorter-preferred "
                    f"{record['valid_accuracy_shorter_preferred']:.4f}, longer wins {record['valid_longer_wins']:.4f}")
        return f"loss {record['loss']:.4f} acc {record['correct'] / max(1.0, record['pairs']):.3f}"


def all_rewards(stage: RMStage, model, accelerator, trees: list[Tree]) -> list[list[float]]:
    """Every branch's reward, per tree, over all processes (each scores its share)."""
    from accelerate.utils import gather_object

    mine = loop.shard(list(range(len(trees))), accelerator)
    scored = []
    for start in range(0, len(mine), stage.eval_batch):
        chunk = mine[start : start + stage.eval_batch]
        batch = stage.layout([trees[i] for i in chunk]).to(accelerator.device)
        flat = stage.rewards(model, batch).float().cpu().tolist()
        for i in chunk:
            k = len(trees[i].branches)
            scored.append((i, flat[:k]))
            flat = flat[k:]
    scored = gather_object(scored) if accelerator.num_processes > 1 else scored
    return [r for _, r in sorted(scored)]


# --- the stage, top to bottom --------------------------------------------------------------------


def main(argv: list[str]) -> int:
    config = resolve(RMConfig, argv, "evalsuite train rm")
    return evaluate_only(config) if config.eval_only else train(config)


def train(config: RMConfig) -> int:
    started = time.time()
    accelerator, path, tokenizer = loop.start(config)
    pad_token, pad_id = modeling.reward_pad_token(tokenizer)
    tokenizer.pad_token = pad_token
    use_template = use_chat_template(tokenizer, config.chat_template, config.model)
    data = gather(config, "comparisons")
    demo_files = load_all(config.demos, "demonstrations") if config.demos else []
    for line in data.report + [f"demos data {d.summary()}" for d in demo_files]:
        loop.say(accelerator, line)
    train_set = encode(tokenizer, data.train, use_template, config.max_length, config.overlong)
    valid_set = encode(tokenizer, data.valid, use_template, config.max_length, config.overlong)
    loop.say(accelerator, describe_encoding(train_set, valid_set, use_template))
    files = data.files + [d.describe() | {"role": "demos", "split": config.split} for d in demo_files]
    resuming = loop.claim_output(accelerator, config, files) is not None
    model = load_model(path, config, pad_id)
    packed = modeling.use_packing(model, config.packing)
    stage = RMStage(train_set, valid_set, packed, config, pad_id, modeling.attention_kind(model))
    expert = expert_facts(stage.expert, train_set)
    if expert:
        loop.say(accelerator, describe_expert(expert))
    lengths = None if packed else [t.size for t in train_set.trees]
    run, module, optimizer = loop.prepare(accelerator, config, BranchRewards(model), len(train_set.trees), resuming,
                                          lengths)
    state = loop.train(run, module, optimizer, stage)
    demos = [e for d in demo_files for e in select(d.examples, config.split)]
    centred = centre_on_demos(stage, module, accelerator, single(tokenizer, demos, use_template, config.max_length))
    weights = loop.unwrapped_state_dict(accelerator, module)
    manifest = build_manifest(
        "rm", [parent("init", config.model, path)], files, config.to_dict(), loop.run_facts(run, state, started),
        metrics(state) | centred | expert, {"evaluations": state["evals"], "format": {
            "chat_template": use_template, "max_length": config.max_length, "packing": packed,
            "pad_token": pad_token, "truncated_prompts": train_set.truncated + valid_set.truncated,
            "skipped_too_long": train_set.skipped + valid_set.skipped}},
    )
    final = accelerator.unwrap_model(module).model
    loop.finish(run, lambda folder: save_model(final, weights, tokenizer, folder), manifest, state)
    loop.say(accelerator, summary(state, centred, config.output))
    return 0


def load_model(path: str, config: RMConfig, pad_id: int):
    """The SFT model's backbone under a new one-label score head, in float32, ready to train."""
    causal = load_weights(path, "causal", torch.float32, config.trust_remote_code, "--model", config.model)
    torch.manual_seed(config.seed)  # the new head's initial weights
    model = modeling.reward_model_from(causal, pad_id)
    del causal
    modeling.train_top_layers(model, config.train_layers, model.score)
    if config.gradient_checkpointing:
        modeling.enable_checkpointing(model)
    return model.train()


def centre_on_demos(stage: RMStage, module, accelerator, demos: list[Tree]) -> dict:
    """InstructGPT's normalisation: shift the rewards so that the demonstrations score 0 on average
    (the shift goes into ``config.reward_offset``, which every reader adds)."""
    if not demos:
        return {}
    module.eval()
    with torch.no_grad():
        rewards = [r[0] for r in all_rewards(stage, module, accelerator, demos)]
    config = accelerator.unwrap_model(module).model.config
    mean = sum(rewards) / len(rewards)
    config.reward_offset = float(getattr(config, "reward_offset", 0.0) or 0.0) - mean
    loop.say(accelerator, f"demonstrations: mean reward {mean:.4f} over {len(rewards)}; reward_offset "
                          f"{config.reward_offset:.4f}")
    return {"demos_mean_reward_before_offset": mean, "demos": len(rewards), "reward_offset": config.reward_offset}


def expert_facts(coef: float | None, train: Encoded) -> dict:
    """The manifest's record of the length expert (empty without one)."""
    if coef is None:
        return {}
    _, len_w, len_l = ranked_pairs([[0.0] * len(n) for n in train.lengths], train.lengths)
    unequal = [a > b for a, b in zip(len_w, len_l) if a != b]
    return {"length_expert": {"coef": coef, "feature": "log(1 + characters)", "pairs": len(len_w),
                              "labels_longer_preferred": sum(unequal) / max(1, len(unequal))}}


def describe_expert(facts: dict) -> str:
    e = facts["length_expert"]
    return (f"length expert: P(w preferred) = sigmoid({e['coef']:.4f} * (log(1 + chars_w) - log(1 + chars_l))), fitted "
            f"on {e['pairs']} training pairs (the labels prefer the longer response in "
            f"{100 * e['labels_longer_preferred']:.1f}% of them); in the loss only, not in the saved reward")


def save_model(model, weights: dict, tokenizer, folder: Path) -> None:
    model.config.use_cache = True
    model.save_pretrained(folder, state_dict=weights, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def describe_encoding(train_set: Encoded, valid_set: Encoded, use_template: bool) -> str:
    sets = (("train", train_set), ("valid", valid_set))
    parts = [f"{name}: {len(e.trees)} comparisons, {sum(len(t.branches) for t in e.trees)} responses, "
             f"{sum(t.size for t in e.trees)} tokens, {e.truncated} prompts cut"
             + (f", {len(e.skipped)} skipped (too long)" if e.skipped else "") for name, e in sets]
    return f"chat template: {'on' if use_template else 'off'}; " + "; ".join(parts)


def metrics(state: dict) -> dict:
    last = state["history"][-1] if state["history"] else {}
    out = {"train_loss": last.get("loss"), "train_accuracy": last.get("correct", 0) / max(1.0, last.get("pairs", 0))}
    if state["evals"]:
        out |= {k: v for k, v in state["evals"][-1].items() if k.startswith("valid_")}
    return out


def summary(state: dict, centred: dict, output: str) -> str:
    facts = metrics(state)
    line = f"rm: {state['step']} steps, {state['tokens']} tokens, final train loss {facts['train_loss']:.4f}"
    if "valid_accuracy" in facts:
        line += f", valid accuracy {facts['valid_accuracy']:.4f} ± {facts['valid_accuracy_stderr'] or 0:.4f}"
    if centred:
        line += f", reward_offset {centred['reward_offset']:.4f}"
    return line + f"\ncheckpoint: {output}"


# --- evaluation only -----------------------------------------------------------------------------

EVAL_CHUNK = 64  # dialogues per progress step


def evaluate_only(config: RMConfig) -> int:
    """Pairwise accuracy (with its standard error and the length breakdown) of ``--reward`` on
    ``--data``, read through ``RewardModel`` exactly as PPO and the ``rm:`` judge read rewards."""
    from tqdm.auto import tqdm

    files = load_all(config.data, "comparisons")
    comparisons = [c for f in files for c in select(f.examples, config.split)]
    for f in files:
        print(f"data {f.summary()}")
    reward = RewardModel(config.reward, device=config.device, dtype=config.dtype,
                         batch_size=config.eval_batch_size or 16, max_length=config.max_length,
                         chat_template=config.chat_template, trust_remote_code=config.trust_remote_code)
    dialogues = [(c.prompt, r) for c in comparisons for r in c.responses]
    order = sorted(range(len(dialogues)), key=lambda i: -len(dialogues[i][1]))
    scores = [0.0] * len(dialogues)
    for start in tqdm(range(0, len(order), EVAL_CHUNK), desc="scoring", unit="chunk"):
        chunk = order[start : start + EVAL_CHUNK]
        for i, value in zip(chunk, reward.score([dialogues[i] for i in chunk])):
            scores[i] = value
    per_comparison, start = [], 0
    for c in comparisons:
        per_comparison.append(scores[start : start + len(c.responses)])
        start += len(c.responses)
    pairs = ranked_pairs(per_comparison, [[len(r) for r in c.responses] for c in comparisons])
    print(f"reward model {config.reward} on {len(comparisons)} comparisons ({len(pairs[0])} pairs)")
    for line in format_metrics(pairwise_metrics(*pairs)):
        print(line)
    return 0
