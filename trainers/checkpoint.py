"""Checkpoints and the training state: what Accelerate does not do for the trainer.

``OUTPUT/`` is written once, at the end, as a whole folder built under a temporary name and renamed
into place (``fileio.atomic_folder``): a normal Hugging Face folder (safetensors, tokenizer, config)
plus ``evalsuite_manifest.json``, ``train_log.jsonl`` and ``train_config.toml``. Until then the run
lives beside it in ``OUTPUT.training/``:

- ``training.json``: the stage, the resolved config and the data digests of the run that owns the
  folder; the same command finds it and resumes, other settings are refused (or, with
  ``--overwrite``, discarded);
- ``state/step-NNNNNNNN/``: Accelerate's training state (weights, optimizer, every process's RNG)
  and ``trainer_state.json`` (the step, which is the data position, the logs so far), each saved
  atomically; only the newest is kept.

A kill at any moment, a full disk while saving, or a NaN loss leaves the last complete state (and
any previous ``OUTPUT``) as it was.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import atomic_folder, atomic_write, atomic_write_json, atomic_write_jsonl, disk_full
from evalsuite.models.loading import MANIFEST, fingerprint, lineage, read_manifest
from evalsuite.results import versions
from evalsuite.trainers.config import differences, dump_toml

MANIFEST_VERSION = 1
CLAIM = "training.json"
STATE = "state"
TRAINER_STATE = "trainer_state.json"
STEP_DIR = re.compile(r"^step-(\d{8})$")


def work_folder(output: Path) -> Path:
    return output.with_name(output.name + ".training")


RESUMABLE = ("lr", "max_grad_norm", "save_every", "eval_every", "eval_batch_size")  # may change on resume


def claim(output: Path, identity: dict, overwrite: bool) -> list[str] | None:
    """Check ``output`` and take its work folder for this run, before any model loads. Returns None
    for a fresh start, or the settings changed since the unfinished run found there (an empty list
    when none), which then resumes: the same stage, data and settings, except that the learning rate,
    the clipping and how often to save or validate may change (after a NaN, say)."""
    if output.exists() and not output.is_dir():
        raise EvalsuiteError(f"--output {output} is a file, not a folder.", "choose another --output")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        held = read_manifest(str(output))
        what = f"a trained {held.get('stage', '')} checkpoint".replace("  ", " ") if held else "other files"
        raise EvalsuiteError(f"--output {output} already holds {what}.",
                             "choose another --output, or pass --overwrite to replace it when this run ends")
    work = work_folder(output)
    if (work / CLAIM).is_file():
        saved = json.loads((work / CLAIM).read_text(encoding="utf-8"))
        changed = differences(saved.get("config", {}), identity["config"])
        if saved.get("stage") == identity["stage"] and saved.get("data") == identity["data"] and all(
            c.split(":")[0] in RESUMABLE for c in changed
        ):
            if changed:
                atomic_write_json(work / CLAIM, identity)
            return changed
        if not overwrite:
            if saved.get("data") != identity["data"]:
                changed.append("the data files' contents")
            raise EvalsuiteError(
                f"{work} holds an unfinished {saved.get('stage')} run with other settings ({'; '.join(changed[:4])}).",
                "run the same command as before to resume it, or pass --overwrite to start over",
            )
        shutil.rmtree(work)
    elif work.exists() and any(work.iterdir()):
        if not overwrite:
            raise EvalsuiteError(f"{work} exists and is not a training folder of evalsuite.",
                                 "move it away, or pass --overwrite to replace it")
        shutil.rmtree(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
        atomic_write_json(work / CLAIM, identity)
    except OSError as err:
        raise disk_full(err, work) or EvalsuiteError(
            f"Cannot write the training folder {work} ({err.strerror or err}).", "choose another --output") from None
    return None


def latest_state(work: Path) -> Path | None:
    states = sorted(p for p in (work / STATE).glob("step-*") if STEP_DIR.match(p.name) and p.is_dir())
    return states[-1] if states else None


def save_state(accelerator, work: Path, step: int, trainer_state: dict) -> Path:
    """Every process writes its part of the training state into one temporary folder, which the
    main process then renames to ``state/step-N`` (older states are removed after)."""
    import logging

    from accelerate.utils import broadcast_object_list

    # tied weights (input and output embeddings) are stored once; Accelerate says so at every save
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    final = work / STATE / f"step-{step:08d}"
    with contextlib.ExitStack() as stack:
        tmp = [None]
        try:
            if accelerator.is_main_process:
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = [str(stack.enter_context(atomic_folder(final, replace=True)))]
            tmp = broadcast_object_list(tmp) if accelerator.num_processes > 1 else tmp
            accelerator.save_state(tmp[0], safe_serialization=True)
            if accelerator.is_main_process:
                atomic_write_json(Path(tmp[0]) / TRAINER_STATE, trainer_state)
            accelerator.wait_for_everyone()
        except OSError as err:
            raise disk_full(err, final) or err from None
    if accelerator.is_main_process:
        for old in (work / STATE).glob("step-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_state(accelerator, path: Path) -> dict:
    accelerator.load_state(str(path))
    return json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))


# --- the manifest --------------------------------------------------------------------------------


def parent(role: str, spec: str, path: str) -> dict:
    """A parent checkpoint as the manifest records it: the same fingerprint ``evalsuite run`` records."""
    held = read_manifest(path) or {}
    return {"role": role, "spec": spec, "path": str(path), "stage": held.get("stage", "base"),
            "fingerprint": fingerprint(path)}


def build_manifest(stage: str, parents: list[dict], data: list[dict], config: dict, run: dict, metrics: dict,
                   extra: dict | None = None) -> dict:
    """``run`` holds steps, epochs, examples, tokens, seed, wall_seconds and device. The lineage is
    the first parent's (the weights this stage started from): base -> ... -> that parent."""
    first = parents[0]
    return {
        "evalsuite_manifest": MANIFEST_VERSION,
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parents": parents,
        "lineage": lineage(first["path"], first["fingerprint"]),
        "data": data,
        "config": config,
        **run,
        "metrics": metrics,
        "versions": versions(),
        **(extra or {}),
    }


def export(output: Path, write_model: Callable[[Path], None], manifest: dict, log: list[dict], config: dict) -> None:
    """The final checkpoint, built in a temporary folder and renamed to ``output`` (main process)."""
    try:
        with atomic_folder(output, replace=True) as tmp:
            write_model(tmp)
            atomic_write_jsonl(tmp / "train_log.jsonl", log)
            atomic_write(tmp / "train_config.toml", dump_toml(config))
            atomic_write_json(tmp / MANIFEST, manifest)
    except OSError as err:
        raise disk_full(err, output) or err from None
