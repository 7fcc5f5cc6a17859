"""Training data: demonstrations (SFT) and ranked comparisons (reward model), in the formats people
publish them in, detected per file from the fields of its first row and reported.

Every example ends up as chat messages before the response (``prompt``) plus the response text(s),
so that the stage formats them with the same rule ``evalsuite run`` uses (``models.chat``).

Demonstration formats:
- ``prompt-response``: ``prompt`` (text or chat messages) and ``response`` (or ``completion``);
- ``alpaca``: ``instruction``, optional ``input``, ``output`` (Stanford Alpaca, AlpacaFarm);
- ``messages``: a chat ``messages`` list whose last message is the assistant's reply;
- ``self-instruct``: ``instruction`` and ``instances: [{input, output}]`` (Self-Instruct's seed tasks
  and user-oriented instructions): one demonstration per instance;
- ``hh-rlhf``: a ``chosen`` dialogue ("\\n\\nHuman: ... \\n\\nAssistant: ..."): everything before the last
  assistant turn is the prompt, that turn the response.

Comparison formats (responses best first):
- ``ranked``: ``prompt`` and ``responses`` (2 or more) best first, or with ``ranks`` (1 = best), or
  responses as ``{"text": ..., "rank": ...}`` objects;
- ``pairs``: ``prompt``, ``chosen``, ``rejected``;
- ``hh-rlhf``: ``chosen`` and ``rejected`` dialogues sharing every turn but the last;
- ``alpaca-eval``: ``instruction``, ``output_1``, ``output_2``, ``preference`` (1 or 2; AlpacaEval's
  soft preferences count for the side of 1.5 they are on; 0 and 1.5 are ties, skipped and counted).

Rows that cannot be used as they stand (ties, two identical responses, HH-RLHF dialogues whose
responses do not share their earlier turns) are skipped and counted in the report, never dropped
silently; rows that break the format are an error naming the file and line.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evalsuite.errors import EvalsuiteError, malformed
from evalsuite.fileio import decode_text, json_lines, sha256_file, sha256_text


@dataclass
class Demonstration:
    prompt: list[dict]  # chat messages before the response
    response: str
    where: str  # "file:line", for messages about this example


@dataclass
class Comparison:
    prompt: list[dict]
    responses: list[str]  # best first, strictly ordered
    where: str


class Skip(Exception):
    """A row that is well formed but cannot be used (a tie, say): counted under ``reason``."""

    def __init__(self, reason: str):
        self.reason = reason


@dataclass
class DataFile:
    """One file's examples and what the report (and the manifest) says about it."""

    path: str
    sha256: str
    format: str
    rows: int
    examples: list
    skipped: Counter = field(default_factory=Counter)

    def describe(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows, "format": self.format,
                "examples": len(self.examples), "skipped": dict(self.skipped)}

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return (f"{self.path}: {self.format} format, {self.rows} rows -> {len(self.examples)} examples"
                + (f" (skipped: {skipped})" if skipped else ""))


# --- reading rows --------------------------------------------------------------------------------


def read_rows(spec: str) -> tuple[str, str, list[tuple[int, object]]]:
    """(path, sha256, [(line or row number, row), ...]) of a local file or a Hub dataset."""
    path = Path(spec).expanduser()
    if path.is_file():
        raw = path.read_bytes()
        if path.suffix == ".gz":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as err:
                raise EvalsuiteError(f"{spec} is not a readable gzip file ({err}).", "re-download the file") from None
        text = decode_text(raw, path)
        name = path.name.removesuffix(".gz")
        if name.endswith(".json") and text.lstrip().startswith("["):
            rows = _json_array(text, path)
        else:
            rows = list(json_lines(text, path))
        return str(path.resolve()), sha256_file(path), rows
    if path.is_dir():  # a dataset folder (data files, or a saved Hub dataset layout): read by `datasets`
        return _dataset_rows(str(path), "train", f"dataset folder {spec}")
    return _hub_rows(spec)


def _json_array(text: str, path: Path) -> list[tuple[int, object]]:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise malformed(path, err.lineno, f"not JSON ({err.msg})") from None
    return [(i, row) for i, row in enumerate(value, start=1)]  # a JSON array: numbered by element


def _hub_rows(spec: str) -> tuple[str, str, list[tuple[int, object]]]:
    from evalsuite.data import hub_reachable

    name, _, split = spec.partition(":")
    hub_like = name.count("/") == 1 and not spec.startswith((".", "/", "~"))
    if not hub_like or not hub_reachable():
        raise EvalsuiteError(
            f"Data file {spec} does not exist" + (" and the Hub is not reachable" if hub_like else "") + ".",
            "check the path given to --data (a Hub dataset name such as owner/name:train needs the Hub)",
        )
    return _dataset_rows(name, split or "train", f"Hub dataset {spec}")


def _dataset_rows(name: str, split: str, what: str) -> tuple[str, str, list[tuple[int, object]]]:
    """Rows of a dataset ``datasets.load_dataset`` reads (a Hub name or a local folder), numbered from 1."""
    import datasets

    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as err:
        raise EvalsuiteError(f"Could not load {what}: {str(err).splitlines()[0]}",
                             "check the dataset name and split (owner/name:split)") from err
    rows = [(i, dict(row)) for i, row in enumerate(dataset, start=1)]
    source = f"hub:{name}:{split}" if what.startswith("Hub") else f"{Path(name).resolve()}:{split}"
    return source, sha256_text(dataset._fingerprint), rows


# --- shared pieces -------------------------------------------------------------------------------


def as_messages(prompt, path, line: int) -> list[dict]:
    """A prompt given as text (one user turn) or as chat messages, as chat messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt
    ):
        return [{"role": m["role"], "content": m["content"]} for m in prompt]
    raise malformed(path, line, "the prompt must be text or a list of {role, content} messages")


def instruction_prompt(instruction: str, extra: str = "") -> list[dict]:
    """Alpaca-style instruction with an optional input, as one user turn (input after a blank line)."""
    text = instruction.strip() + (f"\n\n{extra.strip()}" if extra and extra.strip() else "")
    return [{"role": "user", "content": text}]


TURN = re.compile(r"\n\n(Human|Assistant):")


def parse_dialogue(text: str, path, line: int) -> list[dict]:
    """An HH-RLHF dialogue ("\\n\\nHuman: ...\\n\\nAssistant: ...") as chat messages."""
    parts = TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise malformed(path, line, "not an HH-RLHF dialogue (expected '\\n\\nHuman: ...\\n\\nAssistant: ...')")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[who], "content": body.strip()} for who, body in zip(parts[1::2], parts[2::2])]


def _split_last_reply(messages: list[dict], path, line: int) -> tuple[list[dict], str]:
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise malformed(path, line, "the dialogue must end with an assistant reply after at least one turn")
    return messages[:-1], messages[-1]["content"]


def _text(row: dict, key: str, path, line: int) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise malformed(path, line, f"field '{key}' must be text")
    return value


# --- demonstrations ------------------------------------------------------------------------------


def _demo_prompt_response(row, path, line):
    response = row["response"] if "response" in row else row.get("completion")
    if not isinstance(response, str):
        raise malformed(path, line, "field 'response' (or 'completion') must be text")
    return [Demonstration(as_messages(row.get("prompt"), path, line), response, f"{path}:{line}")]


def _demo_alpaca(row, path, line):
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise malformed(path, line, "field 'input' must be text")
    prompt = instruction_prompt(_text(row, "instruction", path, line), extra)
    return [Demonstration(prompt, _text(row, "output", path, line), f"{path}:{line}")]


def _demo_messages(row, path, line):
    prompt, response = _split_last_reply(as_messages(row.get("messages"), path, line), path, line)
    return [Demonstration(prompt, response, f"{path}:{line}")]


def _demo_self_instruct(row, path, line):
    instruction, instances = _text(row, "instruction", path, line), row.get("instances")
    if not isinstance(instances, list) or not instances:
        raise malformed(path, line, "field 'instances' must be a non-empty list of {input, output}")
    demos = []
    for instance in instances:
        if not isinstance(instance, dict) or not isinstance(instance.get("output"), str):
            raise malformed(path, line, "every instance needs an 'output' text")
        extra = instance.get("input") or ""
        demos.append(Demonstration(instruction_prompt(instruction, str(extra)), instance["output"], f"{path}:{line}"))
    return demos


def _demo_hh(row, path, line):
    prompt, response = _split_last_reply(parse_dialogue(_text(row, "chosen", path, line), path, line), path, line)
    return [Demonstration(prompt, response, f"{path}:{line}")]


# (name, fields that identify it, fields a user should give, parser); the first match wins
DEMO_FORMATS: list[tuple[str, Callable[[dict], bool], str, Callable]] = [
    ("messages", lambda r: "messages" in r, "messages", _demo_messages),
    ("prompt-response", lambda r: "prompt" in r and ("response" in r or "completion" in r), "prompt/response",
     _demo_prompt_response),
    ("self-instruct", lambda r: "instruction" in r and "instances" in r, "instruction/instances", _demo_self_instruct),
    ("alpaca", lambda r: "instruction" in r and "output" in r, "instruction/input/output", _demo_alpaca),
    ("hh-rlhf", lambda r: "chosen" in r, "chosen (an HH-RLHF dialogue)", _demo_hh),
]


# --- comparisons ---------------------------------------------------------------------------------


def _ranked(responses: list[str], ranks: list, path, line: int) -> list[str]:
    if len(ranks) != len(responses) or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ranks):
        raise malformed(path, line, "'ranks' must hold one number per response (1 = best)")
    if len(set(ranks)) != len(ranks):
        raise malformed(path, line, f"equal ranks {sorted(ranks)}: a comparison needs a strict order")
    return [text for _, text in sorted(zip(ranks, responses), key=lambda pair: pair[0])]


def _compare_ranked(row, path, line):
    prompt, items = as_messages(row.get("prompt"), path, line), row.get("responses")
    if not isinstance(items, list):
        raise malformed(path, line, "field 'responses' must be a list")
    if all(isinstance(item, dict) for item in items) and items:
        texts = [item.get("text", item.get("response")) for item in items]
        if not all(isinstance(t, str) for t in texts):
            raise malformed(path, line, "each response object needs a 'text' and a 'rank'")
        responses = _ranked(texts, [item.get("rank") for item in items], path, line)
    elif all(isinstance(item, str) for item in items):
        responses = _ranked(items, row["ranks"], path, line) if "ranks" in row else list(items)
    else:
        raise malformed(path, line, "'responses' must be texts (best first) or {text, rank} objects")
    return _comparison(prompt, responses, path, line)


def _comparison(prompt, responses, path, line) -> list[Comparison]:
    if len(responses) < 2:
        raise malformed(path, line, f"a comparison needs at least two responses, found {len(responses)}")
    if len(set(responses)) != len(responses):
        raise Skip("with identical responses")
    return [Comparison(prompt, responses, f"{path}:{line}")]


def _compare_pairs(row, path, line):
    prompt = as_messages(row.get("prompt"), path, line)
    return _comparison(prompt, [_text(row, "chosen", path, line), _text(row, "rejected", path, line)], path, line)


def _compare_hh(row, path, line):
    chosen = parse_dialogue(_text(row, "chosen", path, line), path, line)
    rejected = parse_dialogue(_text(row, "rejected", path, line), path, line)
    prompt, best = _split_last_reply(chosen, path, line)
    other_prompt, worst = _split_last_reply(rejected, path, line)
    if prompt != other_prompt:
        raise Skip("whose chosen and rejected dialogues differ before the last reply")
    return _comparison(prompt, [best, worst], path, line)


def _compare_alpaca_eval(row, path, line):
    preference = row.get("preference")
    if not isinstance(preference, (int, float)) or isinstance(preference, bool):
        raise malformed(path, line, "field 'preference' must be a number (1: output_1 better, 2: output_2 better)")
    if preference == 0 or preference == 1.5:
        raise Skip("ties")
    if not 1 <= preference <= 2:
        raise malformed(path, line, f"preference {preference} is outside AlpacaEval's 1..2 (0 = tie)")
    extra = row.get("input") or ""
    prompt = instruction_prompt(_text(row, "instruction", path, line), extra if isinstance(extra, str) else "")
    one, two = _text(row, "output_1", path, line), _text(row, "output_2", path, line)
    return _comparison(prompt, [one, two] if preference < 1.5 else [two, one], path, line)


COMPARISON_FORMATS: list[tuple[str, Callable[[dict], bool], str, Callable]] = [
    ("ranked", lambda r: "prompt" in r and "responses" in r, "prompt/responses[/ranks]", _compare_ranked),
    ("pairs", lambda r: "prompt" in r and "chosen" in r and "rejected" in r, "prompt/chosen/rejected", _compare_pairs),
    ("hh-rlhf", lambda r: "chosen" in r and "rejected" in r, "chosen/rejected (HH-RLHF dialogues)", _compare_hh),
    ("alpaca-eval", lambda r: {"instruction", "output_1", "output_2", "preference"} <= set(r),
     "instruction/output_1/output_2/preference", _compare_alpaca_eval),
]


# --- prompts (PPO): any of the above, or prompts alone ---------------------------------------------


@dataclass
class Prompt:
    prompt: list[dict]
    where: str


def _prompts_of(parse: Callable) -> Callable:
    return lambda row, path, line: [Prompt(e.prompt, e.where) for e in parse(row, path, line)]


def _prompt_only(row, path, line):
    return [Prompt(as_messages(row.get("prompt"), path, line), f"{path}:{line}")]


def _instruction_only(row, path, line):
    extra = row.get("input") or ""
    return [Prompt(instruction_prompt(_text(row, "instruction", path, line), str(extra)), f"{path}:{line}")]


# comparisons first: their rows hold "chosen", which would read as an HH-RLHF demonstration
PROMPT_FORMATS: list[tuple[str, Callable[[dict], bool], str, Callable]] = [
    *((name, match, fields, _prompts_of(parse)) for name, match, fields, parse in COMPARISON_FORMATS + DEMO_FORMATS),
    ("prompt", lambda r: "prompt" in r, "prompt (text or chat messages)", _prompt_only),
    ("instruction", lambda r: "instruction" in r, "instruction/input", _instruction_only),
]


# --- loading a file ------------------------------------------------------------------------------


def load(spec: str, kind: str) -> DataFile:
    """The examples of one file: ``kind`` is ``demonstrations``, ``comparisons`` or ``prompts``
    (every format above gives its prompts; so do rows of a ``prompt`` or an ``instruction`` alone)."""
    formats = {"demonstrations": DEMO_FORMATS, "comparisons": COMPARISON_FORMATS, "prompts": PROMPT_FORMATS}[kind]
    path, digest, rows = read_rows(spec)
    if not rows:
        raise EvalsuiteError(f"{path} holds no rows.", f"give a file of {kind}")
    line, first = rows[0]
    if not isinstance(first, dict):
        raise malformed(path, line, "each row must be a JSON object")
    name, _, _, parse = detect(first, formats, path, kind)
    data = DataFile(path, digest, name, len(rows), [])
    for line, row in rows:
        if not isinstance(row, dict):
            raise malformed(path, line, "each row must be a JSON object")
        try:
            data.examples.extend(parse(row, path, line))
        except Skip as skip:
            data.skipped[skip.reason] += 1
    return data


def detect(row: dict, formats, path: str, kind: str):
    for entry in formats:
        if entry[1](row):
            return entry
    expected = "; ".join(f"{name} ({fields})" for name, _, fields, _ in formats)
    raise EvalsuiteError(
        f"{path}: unknown {kind} format (line 1 has fields {', '.join(sorted(row)) or 'none'}).",
        f"give {kind} in one of these formats: {expected}",
    )


def load_all(specs: list[str], kind: str) -> list[DataFile]:
    return [load(spec, kind) for spec in specs]
