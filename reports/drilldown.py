"""The per-sample records a report embeds for its drill-down, compact and inert.

For each task the documents and their requests are stored once (they are the same for every
checkpoint), each checkpoint adding only its responses and scores. Request texts are interned per
task, with the prefix every prompt shares (a few-shot primer) stored once; document fields that
appear verbatim in the prompt (a reading passage) are not repeated; numbers keep six significant
digits (the run record holds them exactly). Each block is gzip-compressed and base64-encoded into
a ``<script type="application/octet-stream">``: the page's script unpacks a task's block only
when its samples are first shown, so a report over tens of thousands of samples opens as fast as
a small one, and base64 cannot close the element it sits in, whatever the models wrote.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

from evalsuite.results import Sample

COMMON_PREFIX_MIN = 64  # a shared prompt start shorter than this is not worth factoring out
IN_PROMPT_MIN = 200  # a document field at least this long that the prompt contains is not repeated


def compact_number(value: Any) -> Any:
    """Floats to six significant digits, recursively through lists and dicts."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if value == value and abs(value) != float("inf") else None
    if isinstance(value, list):
        return [compact_number(v) for v in value]
    if isinstance(value, dict):
        return {k: compact_number(v) for k, v in value.items()}
    return value


def pack(value: Any) -> str:
    """JSON -> gzip (no timestamp, so the same report is the same bytes) -> base64 text."""
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def script_json(value: Any) -> str:
    """JSON that can sit inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` are
    escaped as ``\\u003c`` etc. (JSON.parse reads them back), so no ``</script>`` in a value can end
    the element early and no ``<!--`` can change how the parser reads it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


class Strings:
    """Interned request texts of one task, each stored after the prefix they all share."""

    def __init__(self, texts: list[str]):
        prefix = os.path.commonprefix(texts) if len(texts) > 1 else ""
        self.prefix = prefix if len(prefix) >= COMMON_PREFIX_MIN else ""
        self.table: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, text: str) -> int:
        text = text[len(self.prefix):] if self.prefix and text.startswith(self.prefix) else text
        if text not in self._index:
            self._index[text] = len(self.table)
            self.table.append(text)
        return self._index[text]


def _request_texts(sample: Sample) -> list[str]:
    return [r.get("context") or r.get("text") or "" for r in sample.requests if r.get("kind") != "Score"]


def compact_request(request: dict, strings: Strings) -> dict:
    kind = request.get("kind")
    if kind == "Loglikelihood":
        return {"k": "ll", "c": strings.add(request["context"]), "x": request["continuation"]}
    if kind == "LoglikelihoodRolling":
        return {"k": "roll", "t": strings.add(request["text"])}
    if kind == "Generate":
        options = {k: request[k] for k in ("max_tokens", "temperature", "top_p", "n", "stop", "chat") if k in request}
        return {"k": "gen", "c": strings.add(request["context"]), "o": options}
    if kind == "Score":  # the scored text is the checkpoint's own output, shown with its responses
        return {"k": "score", "s": request.get("scorer", "")}
    return {"k": str(kind)}


def slim_doc(doc: dict, prompts: list[str]) -> tuple[dict, list[str]]:
    """The document without long text fields its prompt already shows, and their names."""
    kept, omitted = {}, []
    for key, value in doc.items():
        if isinstance(value, str) and len(value) >= IN_PROMPT_MIN and any(value in p for p in prompts):
            omitted.append(key)
        else:
            kept[key] = value
    return kept, omitted


def task_blocks(key: str, holders: list[tuple[str, list[Sample]]]) -> tuple[dict, dict[str, dict]]:
    """(shared block, {checkpoint: block}) for task ``key``; ``holders`` are the checkpoints that
    ran it with their samples, the first one's prompts standing for all."""
    order: dict[Any, int] = {}
    firsts: list[Sample] = []
    for _, samples in holders:
        for s in samples:
            ident = json.dumps(s.doc_id)
            if ident not in order:
                order[ident] = len(firsts)
                firsts.append(s)
    strings = Strings([t for s in firsts for t in _request_texts(s)])
    docs = []
    for s in firsts:
        doc, omitted = slim_doc(s.doc, _request_texts(s))
        entry = {"id": s.doc_id, "doc": compact_number(doc), "req": [compact_request(r, strings) for r in s.requests]}
        if omitted:
            entry["omitted"] = omitted
        docs.append(entry)
    shared = {"task": key, "prefix": strings.prefix, "strings": strings.table, "docs": docs}
    per_checkpoint = {}
    for name, samples in holders:
        rows: list[Any] = [None] * len(firsts)
        for s in samples:
            rows[order[json.dumps(s.doc_id)]] = [compact_number(s.responses), compact_number(s.scores)]
        per_checkpoint[name] = {"task": key, "checkpoint": name, "rows": rows}
    return shared, per_checkpoint


def score_keys(holders: list[tuple[str, list[Sample]]]) -> list[str]:
    """The numeric per-sample scores (what the drill-down can sort and filter on)."""
    keys: dict[str, None] = {}
    for _, samples in holders:
        for s in samples[:200]:
            for k, v in s.scores.items():
                if isinstance(v, (int, float)):  # bools too: 0/1 scores
                    keys.setdefault(k)
    return list(keys)
