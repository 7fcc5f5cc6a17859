"""``evalsuite train sft``: supervised fine-tuning on demonstrations, InstructGPT's first stage.

Read top to bottom: the demonstrations become token trees (the prompt as ``evalsuite run`` and PPO
format it, then the response and EOS), batches pack them into rows, the loss is the summed negative
log-likelihood of the response tokens only, and the shared loop trains, validates and saves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from evalsuite.errors import EvalsuiteError
from evalsuite.models.chat import dialogue_text, prompt_text, use_chat_template
from evalsuite.models.hf import model_logits
from evalsuite.models.loading import load_weights
from evalsuite.stats import ratio_of_sums
from evalsuite.trainers import batches, loop, modeling
from evalsuite.trainers.checkpoint import build_manifest, parent
from evalsuite.trainers.config import SFTConfig, resolve
from evalsuite.trainers.dataset import gather, too_long
from evalsuite.trainers.losses import token_nll, token_nll_each
from evalsuite.trainers.packing import Tree, cut_prefix

# --- demonstrations as tokens --------------------------------------------------------------------


@dataclass
class Encoded:
    trees: list[Tree]
    truncated: int = 0  # prompts that lost their start to fit
    skipped: list[str] = field(default_factory=list)  # where the examples too long to keep were


def encode(tokenizer, demos: list, use_template: bool, max_length: int, overlong: str = "error") -> Encoded:
    """One tree per demonstration: prefix = the prompt's tokens, branch = the response's tokens and
    EOS, exactly the sequence a policy produces when it answers the prompt and stops. Over-long
    examples lose the start of their prompt (counted); a response that cannot fit even so is an
    error, or skipped and counted with ``overlong="skip"``."""
    if tokenizer.eos_token_id is None:
        raise EvalsuiteError("The tokenizer has no end-of-sequence token to end responses with.",
                             "use a checkpoint whose tokenizer defines eos_token")
    prompts = [prompt_text(tokenizer, d.prompt, use_template) for d in demos]
    replies = [dialogue_text(tokenizer, d.prompt, d.response, use_template)[len(p):] for d, p in zip(demos, prompts)]
    # a chat template's text carries its own special tokens; plain text gets what the tokenizer adds
    prompt_ids = tokenizer(prompts, add_special_tokens=not use_template).input_ids if demos else []
    reply_ids = tokenizer(replies, add_special_tokens=False).input_ids if demos else []
    out = Encoded([])
    for demo, prompt, reply in zip(demos, prompt_ids, reply_ids):
        kept = cut_prefix(tuple(prompt), [tuple(reply)], max_length)
        if kept is None:
            out.skipped.append(too_long(demo.where, len(reply), max_length, overlong))
            continue
        out.truncated += len(kept) < len(prompt)
        out.trees.append(Tree(kept, (tuple(reply),)))
    return out


# --- the model: final hidden states at response positions -> summed NLL ---------------------------


class ResponseNLL(nn.Module):
    """A causal LM that returns the summed NLL of the targets it is given (or, with ``each``, one
    NLL per target). Wrapping the model keeps every parameter use inside this module's forward,
    which DDP, FSDP and DeepSpeed need."""

    def __init__(self, model, fused: bool):
        super().__init__()
        self.model = model
        self._no_split_modules = getattr(model, "_no_split_modules", None)  # FSDP wraps these blocks
        self.fused = fused

    def forward(self, input_ids, attention_mask, rows, cols, targets, position_ids=None, each: bool = False):
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                       position_ids=position_ids, use_cache=False).last_hidden_state
        head = self.model.get_output_embeddings()

        def logits(h):
            return model_logits(head, self.model.config, h)

        if each:
            return token_nll_each(hidden[rows, cols], targets, logits)
        params = [p for p in head.parameters() if p.requires_grad]
        return token_nll(hidden[rows, cols], targets, logits, params, fused=self.fused)


class SFTStage:
    """What the shared loop needs from SFT (see ``loop.Stage``)."""

    name = "sft"

    def __init__(self, train: list[Tree], valid: list[Tree], packed: bool, config, pad_id: int, attn: str):
        self.train, self.valid = train, valid
        self.packed, self.pad_id, self.attn = packed, pad_id, attn
        self.width = config.max_length
        self.eval_batch = config.eval_batch_size or 2 * config.batch_size
        self.has_valid = bool(valid)

    def layout(self, trees: list[Tree]) -> batches.Batch:
        if self.packed:
            return batches.packed(trees, self.width, self.pad_id, self.attn, torch.float32)
        return batches.padded(trees, self.pad_id)

    def batch(self, indices: list[int]) -> batches.Batch:
        # an empty micro-batch (the end of the data on some process) still runs, with no targets
        trees = [self.train[i] for i in indices] or [Tree((self.pad_id,), ((self.pad_id,),))]
        batch = self.layout(trees)
        batch.empty = not indices
        return batch

    def loss(self, model, batch):
        rows, cols, targets, _ = batches.branch_targets(batch)
        if batch.empty:
            rows, cols, targets = rows[:0], cols[:0], targets[:0]
        nll = model(**batch.model_inputs(), rows=rows, cols=cols, targets=targets)
        return nll, {}

    def weight(self, indices: list[int]) -> float:
        return float(sum(len(self.train[i].branches[0]) for i in indices))

    def evaluate(self, model, accelerator) -> dict:
        """Validation loss: NLL per response token over the validation set, with its standard error
        (delta method, examples as the unit)."""
        from accelerate.utils import gather_object

        mine = loop.shard(list(range(len(self.valid))), accelerator)
        sums = []
        for start in range(0, len(mine), self.eval_batch):
            chunk = mine[start : start + self.eval_batch]
            batch = self.layout([self.valid[i] for i in chunk]).to(accelerator.device)
            rows, cols, targets, owner = batches.branch_targets(batch)
            nll = model(**batch.model_inputs(), rows=rows, cols=cols, targets=targets, each=True)
            per = torch.zeros(len(chunk)).index_add_(0, owner.cpu(), nll.float().cpu())
            sums += [(s, len(self.valid[i].branches[0])) for s, i in zip(per.tolist(), chunk)]
        sums = gather_object(sums) if accelerator.num_processes > 1 else sums
        metric = ratio_of_sums([s for s, _ in sums], [n for _, n in sums])
        return {"valid_loss": metric.value, "valid_loss_stderr": metric.stderr,
                "valid_tokens": sum(n for _, n in sums), "valid_examples": len(sums)}

    @staticmethod
    def describe(record: dict) -> str:
        if "valid_loss" in record:
            se = record.get("valid_loss_stderr")
            return f"valid loss {record['valid_loss']:.4f}" + (f" ± {se:.4f}" if se else "")
        return f"loss {record['loss']:.4f}"


# --- the stage, top to bottom --------------------------------------------------------------------


def main(argv: list[str]) -> int:
    return train(resolve(SFTConfig, argv, "evalsuite train sft"))


def train(config: SFTConfig) -> int:
    started = time.time()
    accelerator, path, tokenizer = loop.start(config)
    use_template = use_chat_template(tokenizer, config.chat_template, config.model)
    data = gather(config, "demonstrations")
    for line in data.report:
        loop.say(accelerator, line)
    train_set = encode(tokenizer, data.train, use_template, config.max_length, config.overlong)
    valid_set = encode(tokenizer, data.valid, use_template, config.max_length, config.overlong)
    loop.say(accelerator, describe_encoding(train_set, valid_set, use_template))
    resuming = loop.claim_output(accelerator, config, data.files) is not None
    model = load_model(path, config)
    packed = modeling.use_packing(model, config.packing)
    pad_id = modeling.pad_token_id(tokenizer)
    fused = loop.fused_head_ok(accelerator)
    stage = SFTStage(train_set.trees, valid_set.trees, packed, config, pad_id, modeling.attention_kind(model))
    module = ResponseNLL(model, fused)
    lengths = None if packed else [t.size for t in train_set.trees]
    run, module, optimizer = loop.prepare(accelerator, config, module, len(train_set.trees), resuming, lengths)
    state = loop.train(run, module, optimizer, stage)
    weights = loop.unwrapped_state_dict(accelerator, module)
    manifest = build_manifest(
        "sft", [parent("init", config.model, path)], data.files, config.to_dict(), loop.run_facts(run, state, started),
        metrics(state), {"evaluations": state["evals"], "format": {
            "chat_template": use_template, "max_length": config.max_length, "packing": packed,
            "truncated_prompts": train_set.truncated + valid_set.truncated,
            "skipped_too_long": train_set.skipped + valid_set.skipped}},
    )
    loop.finish(run, lambda folder: save_model(accelerator.unwrap_model(module).model, weights, tokenizer, folder),
                manifest, state)
    loop.say(accelerator, summary(state, config.output))
    return 0


def describe_encoding(train_set: Encoded, valid_set: Encoded, use_template: bool) -> str:
    sets = (("train", train_set), ("valid", valid_set))
    parts = [f"{name}: {len(e.trees)} sequences, {sum(t.size for t in e.trees)} tokens, {e.truncated} prompts cut"
             + (f", {len(e.skipped)} skipped (too long)" if e.skipped else "") for name, e in sets]
    return f"chat template: {'on' if use_template else 'off'}; " + "; ".join(parts)


def load_model(path: str, config: SFTConfig):
    """The causal LM in float32 (autocast lowers precision on GPUs), ready to train."""
    model = load_weights(path, "causal", torch.float32, config.trust_remote_code, "--model", config.model)
    modeling.train_top_layers(model, config.train_layers, model.get_output_embeddings())
    modeling.add_residual_dropout(model, config.residual_dropout)
    if config.gradient_checkpointing:
        modeling.enable_checkpointing(model)
    return model.train()


def save_model(model, weights: dict, tokenizer, folder: Path) -> None:
    model.config.use_cache = True
    model.save_pretrained(folder, state_dict=weights, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def metrics(state: dict) -> dict:
    evals = state["evals"]
    out = {"train_loss": state["history"][-1]["loss"] if state["history"] else None}
    if evals:
        out |= {"valid_loss_first": evals[0]["valid_loss"], "valid_loss": evals[-1]["valid_loss"],
                "valid_loss_stderr": evals[-1]["valid_loss_stderr"], "valid_tokens": evals[-1]["valid_tokens"]}
    return out


def summary(state: dict, output: str) -> str:
    facts = metrics(state)
    line = f"sft: {state['step']} steps, {state['tokens']} tokens, final train loss {facts['train_loss']:.4f}"
    if "valid_loss" in facts:
        line += f", valid loss {facts['valid_loss_first']:.4f} -> {facts['valid_loss']:.4f}"
    return line + f"\ncheckpoint: {output}"
