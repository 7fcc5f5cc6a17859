"""Loading checkpoints safely, and naming them: the one place where a model spec becomes weights.

Used by the evaluation adapter (``hf.HFModel``), the judges, the toxicity scorer's device choice
and the trainer. A spec is a local Hugging Face folder, a Hub id (used when the Hub is reachable),
a ``.gguf`` file (converted once to a cached folder) or ``default`` (the embedded SmolLM2-135M).

Rules kept here so that no caller can forget them:
- weights load from safetensors only (never a pickle) and no code shipped with a model runs
  unless ``trust_remote_code`` is asked for;
- a folder whose tokenizer cannot be loaded, or loads as a degenerate one-token tokenizer, is
  refused (transformers would otherwise build one silently and every number would be wrong);
- a causal LM passed where a reward model is expected, or the reverse, is refused;
- a checkpoint's ``fingerprint`` covers every file that changes what the model answers: config,
  weights, tokenizer files and chat template, generation defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import sha256_file, sha256_text
from evalsuite.paths import digest_memo, home

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
KINDS = ("causal", "reward", "encoder")  # causal LM, one-label sequence classifier, plain encoder

# Files whose bytes change a model's answers. Weights and config obviously; the tokenizer files
# (a different vocabulary or normaliser changes every token) and the chat template too.
IDENTITY_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model",
    "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json",
)
# At least one of these makes a tokenizer; without them transformers may build an empty one.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")
MIN_VOCAB = 16  # fewer tokens than this is not a tokenizer a language model was trained with


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalsuiteError(f"--device {device} was asked for but no CUDA device is visible.",
                             "use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise EvalsuiteError(f"Unknown device '{device}'.", "use cpu, cuda, cuda:N or auto") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is float32 on a CPU and bfloat16 on a GPU that has it (else float16)."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise EvalsuiteError(f"Unknown dtype '{dtype}'.", f"use one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_model_path(spec: str, flag: str = "--model") -> str:
    """Map ``default``, a ``.gguf`` file, a local folder or a Hub id to what ``from_pretrained`` loads."""
    from evalsuite.models.default import convert_gguf, default_model_dir

    if spec == "default":
        return str(default_model_dir())
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise EvalsuiteError(f"GGUF file {spec} does not exist.", f"check the path given to {flag}")
        out = home() / "models" / f"gguf-{sha256_file(path, digest_memo())[:16]}"
        return str(out if (out / "config.json").is_file() else convert_gguf(path, out))
    if path.exists():
        if not (path / "config.json").is_file():
            raise EvalsuiteError(
                f"Model folder {spec} has no config.json.",
                f"point {flag} at a Hugging Face model folder (config.json + *.safetensors)",
            )
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise EvalsuiteError(f"Model path {spec} does not exist.", f"check the path given to {flag}")
    return spec  # a Hub id: from_pretrained fetches it when the Hub is reachable


def fingerprint(path: str) -> str:
    """The identity of a checkpoint: sha256 over the names and digests of its identity files and
    weights (``hub:<id>`` for a Hub model, whose files evalsuite does not hold)."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}"
    parts = []
    for name in sorted(os.listdir(folder)):
        if name in IDENTITY_FILES or name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
            parts.append(f"{name}:{sha256_file(folder / name, digest_memo())}")
    return sha256_text("\n".join(parts))


def model_kind(path: str) -> str | None:
    """``reward`` for a sequence classifier, ``causal`` for a causal LM, from the config's architectures."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None  # a Hub id: the loader will tell
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (ValueError, AttributeError):
        raise EvalsuiteError(f"{config} is not valid JSON.", "re-save or re-download the checkpoint") from None
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "reward"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "causal"
    return None


def check_kind(path: str, expected: str, flag: str) -> None:
    """Refuse a reward model where a causal LM is expected, and the reverse, before loading anything."""
    found = model_kind(path)
    if expected == "causal" and found == "reward":
        raise EvalsuiteError(
            f"{flag} {path} is a reward model (a sequence classifier), not a causal language model.",
            f"give {flag} a causal LM checkpoint (the SFT or policy folder); reward models go to --reward "
            "or a judge spec rm:CKPT",
        )
    if expected == "reward" and found == "causal":
        raise EvalsuiteError(
            f"{flag} {path} is a causal language model, not a reward model.",
            "give it a one-label sequence-classification checkpoint (the output of evalsuite train rm)",
        )


def load_tokenizer(path: str, trust_remote_code: bool = False, flag: str = "--model"):
    """The checkpoint's tokenizer; refuses a folder without tokenizer files or a degenerate tokenizer."""
    from transformers import AutoTokenizer

    folder = Path(path)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise EvalsuiteError(
            f"{flag} {path} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}).",
            "save the tokenizer into the model folder (tokenizer.save_pretrained(folder))",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as err:  # any loader failure becomes one line that says what to do
        raise EvalsuiteError(
            f"Could not load the tokenizer of {flag} {path}: {_first_line(err)}",
            "save a complete tokenizer (tokenizer.json or vocab files) into the model folder",
        ) from err
    if len(tokenizer) < MIN_VOCAB:
        raise EvalsuiteError(
            f"The tokenizer of {flag} {path} has only {len(tokenizer)} tokens: its files are incomplete.",
            "save the tokenizer the model was trained with into the folder",
        )
    return tokenizer


def load_weights(
    path: str, kind: str, dtype: torch.dtype, trust_remote_code: bool = False, flag: str = "--model", spec: str = ""
):
    """The model of ``kind`` from safetensors, on the CPU (callers move it); one clear line on failure."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    check_kind(path, kind, flag)
    auto = {"causal": AutoModelForCausalLM, "reward": AutoModelForSequenceClassification, "encoder": AutoModel}[kind]
    try:
        model = auto.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
    except Exception as err:
        corrupt = type(err).__name__ == "SafetensorError"
        raise EvalsuiteError(
            f"Could not load model '{spec or path}': {_first_line(err)}",
            "the weights file is corrupt or truncated: re-save or re-download the checkpoint"
            if corrupt
            else f"give {flag} a local folder with config.json and safetensors weights, a .gguf file, "
            "'default', or a Hub id while the Hub is reachable",
        ) from err
    if kind == "reward" and model.config.num_labels != 1:
        raise EvalsuiteError(
            f"{flag} {path} is a sequence classifier with {model.config.num_labels} labels, not a reward model.",
            "give it a one-label sequence-classification checkpoint (the output of evalsuite train rm)",
        )
    return model


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def halving_batches(owner, pending: list[int], work: Callable[[list[int]], Iterable[int]], on_halve=None) -> None:
    """Run ``work`` over ``pending`` until every item is done, halving ``owner.batch_size`` on
    out-of-memory and retrying what was not finished. ``work(items)`` yields each item it finishes."""
    from tqdm.auto import tqdm  # tqdm.write keeps the message clear of the runner's progress bar

    while pending:
        done: set[int] = set()
        try:
            for item in work(pending):
                done.add(item)
        except torch.OutOfMemoryError:
            if owner.batch_size == 1:
                raise EvalsuiteError(
                    "Out of memory even at batch size 1.", "use a smaller --max-length or --dtype, or a larger device"
                ) from None
            owner.batch_size //= 2
            if on_halve is not None:
                on_halve()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            tqdm.write(f"out of memory: batch size halved to {owner.batch_size}")
        pending = [i for i in pending if i not in done]


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def model_positions(path: str, trust_remote_code: bool = False) -> int | None:
    """How many positions the model reads (from its config, before any weight is loaded)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as err:
        raise EvalsuiteError(f"Could not read the config of '{path}': {_first_line(err)}",
                             "give a Hugging Face model folder with a valid config.json") from err
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)


# --- lineage -------------------------------------------------------------------------------------

MANIFEST = "evalsuite_manifest.json"  # written by the trainer into every checkpoint it saves


def read_manifest(path: str) -> dict | None:
    """A checkpoint's training manifest, or None for a checkpoint the trainer did not write."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        return None
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except ValueError:
        raise EvalsuiteError(f"{file} is damaged (not JSON).",
                             "re-save the checkpoint, or delete the manifest") from None
    return manifest if isinstance(manifest, dict) else None


def lineage(path: str, fingerprint_: str) -> list[dict]:
    """``[{stage, path, fingerprint}, ...]`` from the base model to this checkpoint. The manifest
    holds the ancestors (its ``lineage``); a checkpoint without one is a base."""
    manifest = read_manifest(path) or {}
    me = {"stage": manifest.get("stage", "base"), "path": str(path), "fingerprint": fingerprint_}
    return [*manifest.get("lineage", []), me]
