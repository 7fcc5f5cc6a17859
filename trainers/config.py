"""One typed config per stage: a dataclass whose fields carry their help text once.

The same fields are the command-line flags (``lr`` is ``--lr``, ``valid_fraction`` is
``--valid-fraction``), the keys of a TOML file (``--config sft.toml``) and the ``config`` saved in a
checkpoint's manifest. Values resolve in that order: the field's default, then the TOML file, then
the flags given on the command line. A TOML file may hold the settings of several stages: top-level
keys apply to every stage, and a table named after the stage (``[sft]``, ``[rm]``) overrides them.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from evalsuite.errors import EvalsuiteError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CHOICES = {
    "split": ("all", "train", "heldout"),
    "packing": ("auto", "on", "off"),
    "chat_template": ("auto", "on", "off"),
    "dtype": ("auto", "float32", "bfloat16"),
    "overlong": ("error", "skip"),
    "kl_estimator": ("k1", "k3"),
}
CLI_ONLY = ("config", "overwrite")  # how to run, not what is trained: never saved, never compared


def opt(default, help: str, **kwargs):
    """A config field with its help text (the only place the text is written)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainConfig:
    """Settings every training stage shares."""

    model: str = opt("default", "starting checkpoint: a Hugging Face folder, a Hub id, a .gguf file, or 'default'")
    data: list[str] = opt([], "training data file (repeat for several): JSON Lines, JSON or .jsonl.gz, "
                              "or a Hub dataset name (name or name:split) when the Hub is reachable")
    output: str = opt("", "checkpoint folder to write (its training state lives beside it in OUTPUT.training/)")
    valid_data: list[str] = opt([], "validation data file(s); default: a --valid-fraction of the training prompts")
    valid_fraction: float = opt(0.0, "share of the training prompts kept for validation (by prompt, never by row)")
    split: str = opt("all", "which part of every data file to use: all, train (the prompts no PPO or evaluation "
                            "prompt comes from) or heldout (see trainers/splits.py)")
    limit: int = opt(0, "use only the first N training examples of the seeded order (0 = all)")
    valid_limit: int = opt(0, "use only the first N validation examples (0 = all)")
    max_length: int = opt(512, "tokens per sequence; longer examples lose the start of their prompt (counted)")
    overlong: str = opt("error", "an example whose response alone does not fit in --max-length: error, or skip "
                                 "(counted in the report and the manifest)")
    batch_size: int = opt(8, "examples per micro-batch on each process")
    grad_accum: int = opt(1, "micro-batches accumulated into one optimizer step")
    epochs: int = opt(1, "passes over the training data")
    max_steps: int = opt(0, "stop after this many optimizer steps (0 = run --epochs)")
    lr: float = opt(1e-5, "peak learning rate (AdamW)")
    warmup_ratio: float = opt(0.03, "share of the steps spent warming the learning rate up linearly")
    min_lr_ratio: float = opt(0.1, "the cosine decay ends at this share of the peak (InstructGPT: 10%)")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    adam_beta1: float = opt(0.9, "AdamW beta1")
    adam_beta2: float = opt(0.95, "AdamW beta2 (InstructGPT: 0.95)")
    adam_eps: float = opt(1e-8, "AdamW epsilon")
    max_grad_norm: float = opt(1.0, "clip the gradient to this global norm (0 = no clipping)")
    seed: int = opt(1234, "seeds the data order, new weights, dropout")
    shuffle: bool = opt(True, "shuffle the training examples each epoch (seeded)")
    packing: str = opt("auto", "pack sequences into rows without padding: auto (when the attention takes a custom "
                               "mask: sdpa, eager), on, or off (rows padded, grouped by length)")
    train_layers: int = opt(0, "train only the top N transformer layers and the head; the rest stays frozen (0 = all)")
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass (less memory, ~30% slower)")
    chat_template: str = opt("auto", "prompts through the model's chat template: auto (when it has one), on, off")
    device: str = opt("auto", "cpu, cuda or auto (ignored under accelerate launch, which places each process)")
    dtype: str = opt("auto", "auto (bfloat16 autocast on a GPU, float32 on a CPU), float32 or bfloat16")
    save_every: int = opt(50, "save the training state every N optimizer steps (and at each epoch's end)")
    eval_every: int = opt(0, "also validate every N optimizer steps (0 = at each epoch's end only)")
    eval_before: bool = opt(True, "validate once before the first step")
    eval_batch_size: int = opt(0, "examples per validation micro-batch (0 = twice --batch-size)")
    trust_remote_code: bool = opt(False, "allow code shipped with a Hub model to run")
    overwrite: bool = opt(False, "replace what --output holds, and discard an unfinished run there")
    config: str = opt("", "a TOML file of settings; flags given on the command line override it")

    stage = "train"

    def check(self) -> None:
        """Refuse settings that cannot work, one line each, before anything is loaded."""
        positive = ("max_length", "batch_size", "grad_accum", "epochs")
        for name in positive:
            if getattr(self, name) < 1:
                raise EvalsuiteError(f"--{flag(name)} must be at least 1, got {getattr(self, name)}.",
                                     f"give --{flag(name)} a positive whole number")
        for name in ("max_steps", "limit", "valid_limit", "train_layers", "save_every", "eval_every",
                     "eval_batch_size"):
            if getattr(self, name) < 0:
                raise EvalsuiteError(f"--{flag(name)} must not be negative.", f"give --{flag(name)} 0 or more")
        for name in ("valid_fraction", "warmup_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise EvalsuiteError(f"--{flag(name)} must be in [0, 1), got {getattr(self, name)}.",
                                     f"give --{flag(name)} a fraction such as 0.1")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise EvalsuiteError(f"--min-lr-ratio must be in [0, 1], got {self.min_lr_ratio}.", "use e.g. 0.1")
        if not self.lr > 0:
            raise EvalsuiteError(f"--lr must be positive, got {self.lr}.", "use e.g. 1e-5")
        for name, allowed in CHOICES.items():
            if hasattr(self, name) and getattr(self, name) not in allowed:
                raise EvalsuiteError(f"Unknown --{flag(name)} '{getattr(self, name)}'.",
                                     f"use one of {', '.join(allowed)}")
        if not self.data:
            raise EvalsuiteError("No training data given.", "pass --data FILE (repeat for several files)")
        if not self.output:
            raise EvalsuiteError("No --output folder given.", "pass --output FOLDER for the checkpoint")
        if self.valid_fraction and self.valid_data:
            raise EvalsuiteError("Both --valid-fraction and --valid-data were given.", "use one of them")

    def to_dict(self) -> dict:
        """The resolved settings as saved in the manifest (without how-to-run flags)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in CLI_ONLY}


@dataclass
class SFTConfig(TrainConfig):
    """``evalsuite train sft``: supervised fine-tuning on demonstrations, loss on response tokens only."""

    epochs: int = opt(2, "passes over the demonstrations")
    lr: float = opt(2e-5, "peak learning rate (AdamW)")
    residual_dropout: float = opt(0.0, "dropout on each attention and MLP block's output before it joins the "
                                       "residual stream (InstructGPT's SFT: 0.2)")

    stage = "sft"

    def check(self) -> None:
        super().check()
        if not 0.0 <= self.residual_dropout < 1.0:
            raise EvalsuiteError(f"--residual-dropout must be in [0, 1), got {self.residual_dropout}.", "use e.g. 0.1")


@dataclass
class RMConfig(TrainConfig):
    """``evalsuite train rm``: a reward model on ranked comparisons (InstructGPT's K-choose-2 loss)."""

    epochs: int = opt(1, "passes over the comparisons (InstructGPT: 1; more over-fits)")
    lr: float = opt(1e-5, "peak learning rate (AdamW)")
    eval_before: bool = opt(False, "validate once before the first step (the new head scores at chance)")
    center_coef: float = opt(0.0, "reward centring: adds coef * (mean reward of a prompt's responses)^2 to the loss")
    length_expert: bool = opt(False, "train through a length expert: the loss adds a * log(1 + characters) to each "
                                     "response's reward, a fitted to the training labels by length alone, and the "
                                     "saved reward leaves it out, so the model is not rewarded for preferring length")
    demos: list[str] = opt([], "demonstrations: after training, offset the rewards so that these score 0 on average")
    eval_only: bool = opt(False, "only report the pairwise accuracy of --reward on --data (no training)")
    reward: str = opt("", "the reward checkpoint --eval-only scores")

    stage = "rm"

    def check(self) -> None:
        if self.eval_only:
            if not self.reward:
                raise EvalsuiteError("--eval-only needs the reward checkpoint to score.", "pass --reward RM_CKPT")
            if not self.data:
                raise EvalsuiteError("No comparison data given.", "pass --data FILE (repeat for several files)")
            return
        super().check()
        if self.center_coef < 0:
            raise EvalsuiteError("--center-coef must not be negative.", "use 0 (off) or e.g. 0.01")


@dataclass
class PPOConfig(TrainConfig):
    """``evalsuite train ppo``: PPO against a reward model with a per-token KL penalty to the SFT
    policy; with --ptx-data, PPO-ptx (pretraining log-likelihood mixed into the same objective)."""

    model: str = opt("", "the SFT policy to start from (and the frozen reference of the KL penalty)",
                     aliases=("policy",))
    data: list[str] = opt([], "prompt file (repeat for several): any demonstration or comparison format, or rows "
                              "of a prompt or an instruction alone", aliases=("prompts",))
    reward: str = opt("", "the reward model (output of evalsuite train rm); the value function starts from it")
    split: str = opt("heldout", "which prompts of every file to use: heldout (the part no SFT or reward-model "
                                "training prompt comes from), train or all")
    max_length: int = opt(512, "tokens per episode (prompt + response); a longer prompt is an error (or skipped "
                               "with --overlong skip)")
    response_length: int = opt(64, "most tokens sampled per response (a response that has not ended is cut)")
    temperature: float = opt(1.0, "sampling temperature of the rollouts")
    top_p: float = opt(1.0, "nucleus sampling of the rollouts (1 = off)")
    batch_size: int = opt(16, "episodes (prompts) per rollout batch on each process")
    mini_batch_size: int = opt(8, "episodes per PPO optimizer step on each process")
    ppo_epochs: int = opt(4, "passes of PPO updates over each rollout batch")
    epochs: int = opt(1, "passes over the prompts")
    max_steps: int = opt(0, "stop after this many rollout steps (0 = run --epochs)")
    seed: int = opt(1234, "seeds the prompt order, every episode's sampling and the minibatch order")
    lr: float = opt(3e-6, "learning rate (AdamW), constant unless --min-lr-ratio < 1")
    warmup_ratio: float = opt(0.0, "share of the optimizer steps spent warming the learning rate up linearly")
    min_lr_ratio: float = opt(1.0, "the cosine decay ends at this share of the peak (1 = constant)")
    kl_coef: float = opt(0.02, "beta: the per-token KL penalty -beta (log pi - log pi_SFT) (InstructGPT: 0.02)")
    kl_estimator: str = opt("k1", "per-token KL estimate: k1 (log ratio) or k3 (non-negative, lower variance)")
    kl_target: float = opt(0.0, "adapt beta towards this KL per episode (nats; 0 = fixed beta)")
    kl_horizon: int = opt(10000, "episodes over which the adaptive controller moves beta")
    discount: float = opt(1.0, "GAE gamma (InstructGPT: 1, no discount within a response)")
    gae_lambda: float = opt(0.95, "GAE lambda")
    whiten_advantages: bool = opt(True, "whiten the advantages over each rollout batch (every process together)")
    clip_range: float = opt(0.2, "PPO's clip of the probability ratio (1 +- eps)")
    value_clip: float = opt(0.2, "clip of the value update around the rollout's values (0 = no clipping)")
    value_coef: float = opt(0.1, "weight of the value loss in the objective")
    score_clip: float = opt(0.0, "clip reward-model scores to [-c, c] (0 = off)")
    score_norm: bool = opt(False, "whiten reward-model scores over each rollout batch")
    missing_eos_penalty: float = opt(1.0, "subtracted from the score of a response that did not end (0 = none)")
    ema_decay: float = opt(0.0, "keep an EMA of the policy weights and save it (InstructGPT: 0.992; 0 = off)")
    ptx_coef: float = opt(1.0, "PPO-ptx gamma: weight of the pretraining mean log-likelihood (with --ptx-data)")
    ptx_data: list[str] = opt([], "pretraining text for PPO-ptx: a .txt file (WikiText-2, tinyshakespeare) or "
                                  "JSON Lines with a 'text' field; repeat for several")
    ptx_batch_size: int = opt(4, "pretraining rows per PPO optimizer step on each process")
    ptx_length: int = opt(256, "tokens per pretraining row")
    eval_batch_size: int = opt(0, "episodes per reward-model pass (0 = --batch-size)")
    sample_every: int = opt(10, "log a few prompts and responses every N steps (0 = never)")
    save_every: int = opt(10, "save the training state every N rollout steps (and at the end)")

    stage = "ppo"

    @property
    def uses_ptx(self) -> bool:
        return bool(self.ptx_data) and self.ptx_coef > 0

    def check(self) -> None:
        if not self.model:
            raise EvalsuiteError("No policy given.", "pass --policy SFT_CKPT (the output of evalsuite train sft)")
        if not self.reward:
            raise EvalsuiteError("No reward model given.", "pass --reward RM_CKPT (the output of evalsuite train rm)")
        if not self.data:
            raise EvalsuiteError("No prompts given.", "pass --prompts FILE (repeat for several files)")
        super().check()
        if self.valid_data or self.valid_fraction:
            raise EvalsuiteError("PPO has no validation set (--valid-data, --valid-fraction).",
                                 "leave them out; measure held-out prompts with evalsuite run on the checkpoint")
        if self.grad_accum != 1:
            raise EvalsuiteError("--grad-accum is not used by PPO: each minibatch is one optimizer step.",
                                 "leave --grad-accum at 1 and set --mini-batch-size")
        for name in ("response_length", "mini_batch_size", "ppo_epochs", "ptx_batch_size", "ptx_length",
                     "kl_horizon"):
            if getattr(self, name) < 1:
                raise EvalsuiteError(f"--{flag(name)} must be at least 1, got {getattr(self, name)}.",
                                     f"give --{flag(name)} a positive whole number")
        if self.mini_batch_size > self.batch_size:
            raise EvalsuiteError(f"--mini-batch-size {self.mini_batch_size} is larger than --batch-size "
                                 f"{self.batch_size}.", "use a --mini-batch-size of at most --batch-size")
        if self.response_length >= self.max_length:
            raise EvalsuiteError(f"--response-length {self.response_length} leaves no room for a prompt in "
                                 f"--max-length {self.max_length}.", "raise --max-length or lower --response-length")
        for name in ("kl_coef", "kl_target", "score_clip", "missing_eos_penalty", "ptx_coef", "value_clip",
                     "value_coef", "temperature"):
            if getattr(self, name) < 0:
                raise EvalsuiteError(f"--{flag(name)} must not be negative.", f"give --{flag(name)} 0 or more")
        if not 0.0 < self.top_p <= 1.0:
            raise EvalsuiteError(f"--top-p must be in (0, 1], got {self.top_p}.", "use e.g. 1.0 or 0.9")
        if not 0.0 <= self.ema_decay < 1.0:
            raise EvalsuiteError(f"--ema-decay must be in [0, 1), got {self.ema_decay}.", "use 0 (off) or 0.992")
        for name in ("discount", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise EvalsuiteError(f"--{flag(name)} must be in [0, 1].", "use e.g. 1.0 and 0.95")


# --- from flags and TOML to a config -------------------------------------------------------------


def flag(name: str) -> str:
    return name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are the project's one-line errors."""

    def error(self, message: str):
        raise EvalsuiteError(f"{self.prog}: {message}.", f"see {self.prog} --help")


def _kind(cls, name: str):
    return typing.get_type_hints(cls)[name]


def build_parser(cls, prog: str) -> argparse.ArgumentParser:
    """Flags from the dataclass fields; only flags actually given end up in the namespace."""
    parser = _Parser(prog=prog, description=(cls.__doc__ or "").strip(), argument_default=argparse.SUPPRESS)
    for f in fields(cls):
        kind = _kind(cls, f.name)
        options = {"help": f.metadata["help"].replace("%", "%%"), "dest": f.name}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif _is_list(kind):
            options |= {"action": "append", "metavar": "FILE"}
        else:
            options |= {"type": kind, "choices": CHOICES.get(f.name)}
        aliases = [f"--{flag(a)}" for a in f.metadata.get("aliases", ())]
        parser.add_argument(*aliases, f"--{flag(f.name)}", **options)
    return parser


def _is_list(kind) -> bool:
    return typing.get_origin(kind) is list


def read_toml(path: str, cls) -> dict:
    """The settings a TOML file gives for ``cls.stage``, checked against the config's fields and types."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise EvalsuiteError(f"Config file {path} does not exist.", "check the path given to --config")
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise EvalsuiteError(f"Config file {path} is not valid TOML ({err}).", "fix the file") from None
    stages = {"sft", "rm", "ppo"}
    values = {k: v for k, v in doc.items() if not (k in stages and isinstance(v, dict))}
    values |= doc.get(cls.stage, {})
    values = {k.replace("-", "_"): v for k, v in values.items()}
    aliases = {a: f.name for f in fields(cls) for a in f.metadata.get("aliases", ())}
    values = {aliases.get(k, k): v for k, v in values.items()}
    return {name: _coerce(cls, name, value, path) for name, value in values.items()}


def _coerce(cls, name: str, value, path: str):
    known = [f.name for f in fields(cls) if f.name not in CLI_ONLY]
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        raise EvalsuiteError(f"Config file {path}: unknown setting '{name}' for {cls.stage}.",
                             f"did you mean '{close[0]}'?" if close else f"known settings: {', '.join(known)}")
    kind = _kind(cls, name)
    if _is_list(kind):
        value = [value] if isinstance(value, str) else value
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise EvalsuiteError(f"Config file {path}: '{name}' must be {_type_name(kind)}, got {value!r}.",
                             f"fix '{name}' in the file")
    return value


def _type_name(kind) -> str:
    if _is_list(kind):
        return "a list of strings"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))


def resolve(cls, argv: list[str], prog: str):
    """The stage's config from defaults, then ``--config FILE``, then the flags in ``argv``."""
    given = vars(build_parser(cls, prog).parse_args(argv))
    values = read_toml(given["config"], cls) if given.get("config") else {}
    config = cls(**(values | given))
    config.check()
    return config


def differences(saved: dict, current: dict) -> list[str]:
    """Settings that differ between a saved config and the current one, as ``name: old -> new``."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def dump_toml(values: dict) -> str:
    """A flat TOML document of strings, numbers, booleans and lists of strings (what configs hold)."""
    lines = []
    for key, value in values.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
