"""The chat-template rule, shared by evaluation and training so a checkpoint is evaluated in the
format it was trained in: instruction-style prompts go through the model's chat template when it
has one (``auto``), always (``on``: an error without one) or never (``off``)."""

from __future__ import annotations

from evalsuite.errors import EvalsuiteError

MODES = ("auto", "on", "off")


def use_chat_template(tokenizer, mode: str, spec: str, flag: str = "--chat-template") -> bool:
    if mode not in MODES:
        raise EvalsuiteError(f"Unknown {flag} '{mode}'.", "use auto, on or off")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has_template:
        raise EvalsuiteError(f"Model '{spec}' has no chat template.", f"use {flag} off or auto")
    return has_template and mode != "off"


def chat_text(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The template applied as text (its special tokens are in the text; encode it without adding more)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return text if isinstance(text, str) else text[0]


def prompt_text(tokenizer, messages: list[dict], use_template: bool) -> str:
    """The text a model continues to answer the last user turn of ``messages``: the chat template
    with its generation prompt, or, without a template, the turns as ``Human:``/``Assistant:``
    paragraphs (HH-RLHF's own format) ending in ``Assistant:``."""
    if use_template:
        return chat_text(tokenizer, messages, add_generation_prompt=True)
    turns = "".join(f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages)
    return f"{turns.lstrip()}\n\nAssistant:"


def dialogue_text(tokenizer, messages: list[dict], response: str, use_template: bool) -> str:
    """A whole dialogue ending in ``response`` and the end-of-sequence token, exactly what a policy
    produces when it answers ``prompt_text`` and stops: what reward models score and train on."""
    joiner = "" if use_template else " "
    return prompt_text(tokenizer, messages, use_template) + joiner + response + (tokenizer.eos_token or "")
