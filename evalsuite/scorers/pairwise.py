"""Pairwise judges: P(the first output shown is better) for (prompt, first, second) triples.

Three kinds, chosen by the spec's prefix (``load_pair_judge``):

* ``rm:CKPT``: a reward model (one-label sequence classification, ``models.reward``): the
  preference is sigmoid(reward(first) - reward(second)). It sees each output on its own, so the
  order cannot matter and one order is judged.
* ``lm:MODEL``: a causal LM with a fixed pairwise template (``TEMPLATE``; its sha256 is in the
  fingerprint). The preference is P(" A") / (P(" A") + P(" B")) after ``Answer (A or B):``, read
  from log-probabilities, never from generated text. The template's fixed instructions come first,
  so the model's shared-prefix engine computes them once for all pairs. Both orders are judged.
* ``labels:FILE``: preferences someone else gave (AlpacaEval annotations, or JSONL with
  ``prompt``, ``a``, ``b``, ``preference``), matched by prompt and output texts, never by position.

A judge that fails on an item returns None for it: a missing value, never a default.

In a run, a pair travels as ``Score("pairwise:<spec>", context=prompt, text=encode_outputs(first,
second))``, so judged pairs are cached and resumed like every other request.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import json_lines, read_text, sha256_file, sha256_json, sha256_text
from evalsuite.stats import binary_from_logprobs

Triple = tuple[str, str, str]  # (prompt, first output shown, second output shown)
KINDS = ("rm", "lm", "labels")
FIX = "write --judge as rm:CKPT (a reward model), lm:MODEL (a causal LM, e.g. lm:default) or labels:FILE"

# The LM judge's prompt. The instructions are fixed and come first (shared by every pair); the
# verdict is the next token after the answer cue. Changing any part changes the fingerprint.
INSTRUCTIONS = (
    "You are a careful and impartial judge of responses written by AI assistants. You will see an "
    "instruction and two outputs, Output (A) and Output (B), each written in response to it. Decide "
    "which output is better.\n\n"
    "A better output follows the instruction, is helpful, correct and honest, gives the right level of "
    "detail, and contains nothing harmful. Judge what the outputs say, not how long they are, and do "
    "not let the order in which they are shown affect your decision.\n\n"
)
BODY = (
    "# Instruction\n{prompt}\n\n# Output (A)\n{first}\n\n# Output (B)\n{second}\n\n"
    "# Verdict\nWhich output is better, A or B? Answer (A or B):"
)
VERDICTS = (" A", " B")
TEMPLATE = {"instructions": INSTRUCTIONS, "body": BODY, "verdicts": VERDICTS}


def template_sha256() -> str:
    return sha256_json(TEMPLATE)


def lm_prompt(prompt: str, first: str, second: str) -> str:
    return INSTRUCTIONS + BODY.format(prompt=prompt, first=first, second=second)


def scorer_name(spec: str) -> str:
    """The scorer a judged pair is sent to (``Score(scorer_name(spec), ...)``), and its key in a run's
    ``scorers`` record."""
    return f"pairwise:{spec}"


def encode_outputs(first: str, second: str) -> str:
    return json.dumps([first, second], ensure_ascii=False)


def decode_outputs(text: str) -> tuple[str, str]:
    first, second = json.loads(text)
    return first, second


def _finite(p: float) -> float | None:
    return p if math.isfinite(p) else None


def split_spec(spec: str) -> tuple[str, str]:
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS or not rest:
        raise EvalsuiteError(f"Unknown judge '{spec}'.", FIX)
    return kind, rest


# --- reward model --------------------------------------------------------------------------------


class RMJudge:
    kind = "rm"
    both_orders = False  # each output is scored alone: the order shown cannot matter

    def __init__(self, spec: str, path: str, device: str = "auto", batch_size: int = 16):
        from evalsuite.models.reward import RewardModel

        self.spec = spec
        self.model = RewardModel(path, device=device, batch_size=batch_size, flag="--judge")
        self.template_sha256 = None
        self.fingerprint = sha256_text(f"rm|{self.model.fingerprint}|chat={self.model.use_chat_template}")

    def prefer(self, items: list[Triple]) -> list[float | None]:
        unique = sorted({(p, o) for p, a, b in items for o in (a, b)})
        rewards = self.model.score([([{"role": "user", "content": p}], o) for p, o in unique])
        reward = dict(zip(unique, rewards))
        return [_finite(_sigmoid(reward[p, a] - reward[p, b])) for p, a, b in items]

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "fingerprint": self.fingerprint, "template_sha256": None,
                "model": self.model.describe()}


def _sigmoid(x: float) -> float:
    if not math.isfinite(x):
        return float("nan")
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# --- causal LM -----------------------------------------------------------------------------------


class LMPairJudge:
    kind = "lm"
    both_orders = True

    def __init__(self, spec: str, model_spec: str, device: str = "auto", batch_size: int = 16):
        from evalsuite.models.hf import HFModel

        self.spec = spec
        try:
            self.model = HFModel(model_spec, device=device, dtype="auto", batch_size=batch_size)
        except EvalsuiteError as err:  # HFModel's advice names --model; here it is the judge
            raise EvalsuiteError(f"judge {spec}: {err.problem}", FIX) from err
        self.template_sha256 = template_sha256()
        self.fingerprint = sha256_text(f"lm-pairwise|{self.model.cache_namespace}|{self.template_sha256}")

    def prefer(self, items: list[Triple]) -> list[float | None]:
        from evalsuite.requests import Loglikelihood

        prompts = [lm_prompt(*item) for item in items]
        requests = [Loglikelihood(p, v) for p in prompts for v in VERDICTS]
        results = self.model.loglikelihood(requests)
        return [_finite(binary_from_logprobs(a.logprob, b.logprob)) for a, b in zip(results[::2], results[1::2])]

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "fingerprint": self.fingerprint,
                "template_sha256": self.template_sha256, "model": self.model.describe()}


# --- labels --------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


def label_value(preference, path, line: int) -> float | None:
    """AlpacaEval's encoding as P(first better): 1 -> 1.0, 2 -> 0.0, 0 or 1.5 -> 0.5 (a tie),
    a value between 1 and 2 a soft preference; null -> None (not labelled)."""
    if preference is None:
        return None
    if isinstance(preference, bool) or not isinstance(preference, (int, float)):
        raise EvalsuiteError(f"{path} line {line}: preference {preference!r} is not a number.",
                             "use 1 (first better), 2 (second better), 1.5 or 0 (tie), or a value between 1 and 2")
    if preference == 0:
        return 0.5
    if not 1 <= preference <= 2:
        raise EvalsuiteError(f"{path} line {line}: preference {preference} is outside 1..2 (0 is a tie).",
                             "use 1 (first better), 2 (second better), 1.5 or 0 (tie), or a value between 1 and 2")
    return 2.0 - float(preference)


def read_labels(path: Path) -> dict[tuple[str, str, str], float | None]:
    """(prompt, first, second) with whitespace normalised -> P(first better), from an AlpacaEval
    annotations file (JSON list: instruction, output_1, output_2, preference) or JSON Lines
    (prompt, a, b, preference)."""
    if not path.is_file():
        raise EvalsuiteError(f"Labels file {path} does not exist.", "check the path after labels:")
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            rows = list(enumerate(json.loads(text), start=1))
        except ValueError as err:
            raise EvalsuiteError(f"{path} is not valid JSON ({err}).", "check the file is complete") from None
    else:
        rows = list(json_lines(text, path))
    table = {}
    for line, row in rows:
        keys = ("instruction", "output_1", "output_2") if isinstance(row, dict) and "output_1" in row else (
            "prompt", "a", "b")
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in keys) or "preference" not in row:
            raise EvalsuiteError(
                f"{path} line {line}: a label needs instruction, output_1, output_2 and preference "
                "(AlpacaEval annotations) or prompt, a, b and preference (JSON Lines).", "fix or remove that row")
        prompt, first, second = (_norm(row[k]) for k in keys)
        table[prompt, first, second] = label_value(row["preference"], path, line)
    if not table:
        raise EvalsuiteError(f"Labels file {path} holds no labels.", "give a file with at least one labelled pair")
    return table


class Labels:
    """Preferences from a file, looked up in either order."""

    kind = "labels"
    both_orders = False

    def __init__(self, spec: str, path: str):
        self.spec = spec
        self.path = Path(path).expanduser()
        self.table = read_labels(self.path)
        self.template_sha256 = None
        self.fingerprint = sha256_text(f"labels|{sha256_file(self.path)}")

    def shown(self, prompt: str, a: str, b: str) -> str | None:
        """Which order the labels hold for outputs ``a`` (the model's) and ``b``: ``model_first``,
        ``baseline_first``, or None when the file has no such pair."""
        key = (_norm(prompt), _norm(a), _norm(b))
        if key in self.table:
            return "model_first"
        if (key[0], key[2], key[1]) in self.table:
            return "baseline_first"
        return None

    def lookup(self, prompt: str, first: str, second: str) -> float | None:
        return self.table.get((_norm(prompt), _norm(first), _norm(second)))

    def prefer(self, items: list[Triple]) -> list[float | None]:
        return [self.lookup(*item) for item in items]

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "fingerprint": self.fingerprint, "template_sha256": None,
                "path": str(self.path), "n_labels": len(self.table)}


def load_pair_judge(spec: str, device: str = "auto", batch_size: int = 16):
    kind, rest = split_spec(spec)
    if kind == "rm":
        return RMJudge(spec, rest, device=device, batch_size=batch_size)
    if kind == "lm":
        return LMPairJudge(spec, rest, device=device, batch_size=batch_size)
    return Labels(spec, rest)


def orders_for(judge_kind: str, labels: Labels | None, prompt: str, model_out: str, base_out: str,
               one_order: bool, salt: str) -> list[str]:
    """The orders to show a pair in: both for an LM judge (or one, seeded by ``salt``, with
    ``one_order``), model first for a reward model, the labelled one for labels ([] when none)."""
    if judge_kind == "labels":
        found = labels.shown(prompt, model_out, base_out) if labels else None
        return [found] if found else []
    if judge_kind == "rm":
        return ["model_first"]
    if one_order:
        return ["model_first" if int(sha256_text(salt)[:8], 16) % 2 == 0 else "baseline_first"]
    return ["model_first", "baseline_first"]


def shown_triple(order: str, prompt: str, model_out: str, base_out: str) -> Triple:
    return (prompt, model_out, base_out) if order == "model_first" else (prompt, base_out, model_out)


def model_preference(order: str, p_first: float | None) -> float | None:
    """P(the model's output is better) from the judge's P(first better) in ``order``."""
    if p_first is None:
        return None
    return p_first if order == "model_first" else 1.0 - p_first
