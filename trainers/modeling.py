"""Getting a loaded model ready to train: which layout its attention allows, which layers train,
residual dropout, gradient checkpointing, and the reward model built from a causal LM.

Models themselves are loaded by ``evalsuite.models.loading`` (safetensors only, kinds checked).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from evalsuite.errors import EvalsuiteError

PACKING_ATTENTION = ("sdpa", "eager")  # implementations that take a custom 4-D mask
ATTENTION_BLOCKS = ("self_attn", "attn", "attention", "self_attention")
MLP_BLOCKS = ("mlp", "feed_forward", "ffn")


def attention_kind(model) -> str:
    return getattr(model.config, "_attn_implementation", None) or "eager"


def use_packing(model, mode: str) -> bool:
    """Pack rows when asked (``on``) or when the attention takes a custom mask (``auto``)."""
    kind = attention_kind(model)
    if mode == "on" and kind not in PACKING_ATTENTION:
        raise EvalsuiteError(f"--packing on needs sdpa or eager attention; this model uses {kind}.",
                             "use --packing auto or off (padded rows grouped by length)")
    return mode == "on" or (mode == "auto" and kind in PACKING_ATTENTION)


def decoder_layers(model) -> list[nn.Module]:
    """The model's transformer blocks, in order (the classes it names as never to be split)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        lists = [m for m in model.base_model.modules() if isinstance(m, nn.ModuleList)]
        layers = list(max(lists, key=len)) if lists else []
    return layers


def train_top_layers(model, n: int, head: nn.Module) -> None:
    """Freeze everything but the top ``n`` blocks, the final norm and ``head``. The frozen bottom
    then runs without building a graph, so a step costs its forward pass there and no more."""
    if n == 0:
        return
    layers = decoder_layers(model)
    if n > len(layers):
        raise EvalsuiteError(f"--train-layers {n} is more than the model's {len(layers)} layers.",
                             f"use --train-layers {len(layers)} or less (0 trains them all)")
    in_layers = {id(p) for layer in layers for p in layer.parameters()}
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    tied = {id(p) for p in head.parameters()} & embeddings
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in layers[-n:]:
        layer.requires_grad_(True)
    for p in list(model.base_model.parameters()) + list(head.parameters()):
        # the final norm trains; a head tied to the input embeddings stays frozen (training it
        # would need the backward pass through every layer to reach the embedding lookup)
        if id(p) not in in_layers and id(p) not in embeddings and id(p) not in tied:
            p.requires_grad_(True)


def add_residual_dropout(model, p: float) -> int:
    """Dropout on every attention and MLP block's output before it is added to the residual stream
    (GPT's "residual dropout"), active in training mode only. Returns the number of blocks hooked."""
    if p == 0:
        return 0
    hooked = 0
    for layer in decoder_layers(model):
        for name, child in layer.named_children():
            if name in ATTENTION_BLOCKS + MLP_BLOCKS:
                child.register_forward_hook(functools.partial(_drop_output, p=p))
                hooked += 1
    if hooked == 0:
        raise EvalsuiteError(f"--residual-dropout: no attention or MLP blocks found in {type(model).__name__}.",
                             "leave --residual-dropout at 0 for this architecture")
    return hooked


def _drop_output(module, args, output, p: float):
    if not module.training:
        return None
    if isinstance(output, tuple):
        return (F.dropout(output[0], p, True), *output[1:])
    return F.dropout(output, p, True)


def enable_checkpointing(model) -> None:
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def pad_token_id(tokenizer) -> int:
    """The id that pads a causal LM's rows: the tokenizer's pad, else EOS (padding is masked out)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def reward_pad_token(tokenizer) -> tuple[str, int]:
    """A padding token that is not EOS (the reward is read at the response's EOS, and plain
    transformers finds a row's last token as the last one that is not padding): the tokenizer's own
    pad when it differs from EOS, else ``<|endoftext|>``, BOS or UNK when they differ."""
    eos, vocab = tokenizer.eos_token_id, tokenizer.get_vocab()
    for token in (tokenizer.pad_token, "<|endoftext|>", tokenizer.bos_token, tokenizer.unk_token):
        if token is not None and token in vocab and vocab[token] != eos:
            return token, vocab[token]
    raise EvalsuiteError("The tokenizer has no token other than EOS to pad reward-model rows with.",
                         "add a pad token to the tokenizer (tokenizer.add_special_tokens({'pad_token': '<pad>'}))")


def reward_model_from(causal, pad_id: int):
    """A one-label sequence classifier with the causal LM's backbone weights and a new score head
    (initialised as the architecture initialises it, from the current torch seed)."""
    from transformers import AutoModelForSequenceClassification

    config = causal.config.__class__.from_dict(causal.config.to_dict())
    config.num_labels = 1
    config.pad_token_id = pad_id
    config.id2label, config.label2id = {0: "reward"}, {"reward": 0}
    model = AutoModelForSequenceClassification.from_config(config, dtype=next(causal.parameters()).dtype)
    model.base_model.load_state_dict(causal.base_model.state_dict(), strict=True)
    return model


def head_and_params(model) -> tuple[nn.Module, list[torch.Tensor]]:
    head = model.get_output_embeddings()
    return head, [p for p in head.parameters() if p.requires_grad]
