"""Runs grouped by the checkpoint they evaluated, and which checkpoint is compared with which.

A checkpoint is identified by its weights fingerprint; a user may have evaluated one checkpoint in
several runs (say the likelihood tasks, then the generation tasks), so a checkpoint holds every run
of it and finds each task in the run that has it. Its lineage (recorded by ``evalsuite run`` from
the trainer's manifest) names its parent and its base, which is how ``evalsuite tax RUN...``
pairs checkpoints without being told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.results import RunRecord, TaskRecord, load_run


@dataclass
class Checkpoint:
    name: str  # a short label, unique among the checkpoints of one table or report
    fingerprint: str
    stage: str
    lineage: list[dict]  # base first, this checkpoint last
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def model(self) -> dict:
        return self.runs[0].model

    def task_keys(self) -> list[str]:
        return list(dict.fromkeys(key for run in self.runs for key in run.tasks))

    def run_of(self, task: str) -> RunRecord | None:
        return next((run for run in self.runs if task in run.tasks), None)

    def task(self, key: str) -> TaskRecord | None:
        run = self.run_of(key)
        return run.tasks[key] if run else None


def label(lineage_entry: dict) -> str:
    """A checkpoint's folder name (``ckpt-sft``), else its Hub id or spec."""
    path = str(lineage_entry.get("path") or "model").rstrip("/")
    return Path(path).name or path


def group_runs(paths: list[str | Path]) -> list[Checkpoint]:
    """Load every run and group the runs by model fingerprint, in the order first given. Two runs
    of one checkpoint may not both hold the same task (which of them would count?)."""
    by_fingerprint: dict[str, Checkpoint] = {}
    for path in paths:
        run = load_run(path)
        fingerprint = str(run.model.get("fingerprint"))
        me = run.lineage[-1]
        ckpt = by_fingerprint.setdefault(
            fingerprint, Checkpoint(label(me), fingerprint, str(me.get("stage", "base")), run.lineage))
        for other in ckpt.runs:
            shared = sorted(set(other.tasks) & set(run.tasks))
            if shared:
                raise EvalsuiteError(
                    f"Runs {other.path} and {run.path} both evaluate checkpoint {ckpt.name} on {', '.join(shared)}.",
                    "give one run per task and checkpoint (drop one of the two folders)")
        ckpt.runs.append(run)
    checkpoints = list(by_fingerprint.values())
    _unique_names(checkpoints)
    return checkpoints


def _unique_names(checkpoints: list[Checkpoint]) -> None:
    """Two different checkpoints in folders of the same name get their stage, then a fingerprint prefix."""
    for attempt in (lambda c: f"{c.stage}:{c.name}", lambda c: f"{c.name}@{c.fingerprint[:8]}"):
        names = [c.name for c in checkpoints]
        for ckpt in checkpoints:
            if names.count(ckpt.name) > 1:
                ckpt.name = attempt(ckpt)


@dataclass(frozen=True)
class Pairing:
    checkpoint: Checkpoint
    reference: Checkpoint
    relation: str  # "parent", "base" (from the lineage) or "given" (--base)


def pair_with_base(base: Checkpoint, others: list[Checkpoint]) -> list[Pairing]:
    pairs = []
    for ckpt in others:
        if ckpt.fingerprint == base.fingerprint:
            raise EvalsuiteError(f"Run {ckpt.runs[0].path} evaluates the --base checkpoint itself ({base.name}).",
                                 "list it only as --base, or pass the runs of other checkpoints")
        pairs.append(Pairing(ckpt, base, "given"))
    return pairs


def pair_by_lineage(checkpoints: list[Checkpoint]) -> tuple[list[Pairing], list[str]]:
    """Each checkpoint against its parent and against its base, when their runs are given; and a
    line for each checkpoint with ancestors but no ancestor's run among them."""
    known = {c.fingerprint: c for c in checkpoints}
    pairs: list[Pairing] = []
    unpaired: list[str] = []
    for ckpt in checkpoints:
        ancestors = ckpt.lineage[:-1]
        if not ancestors:
            continue
        parent, base = ancestors[-1], ancestors[0]
        # A direct child of the base is compared once, as against its base.
        wanted = [(base, "base")] if len(ancestors) == 1 else [(parent, "parent"), (base, "base")]
        found = False
        for entry, relation in wanted:
            reference = known.get(str(entry.get("fingerprint")))
            if reference is not None:
                pairs.append(Pairing(ckpt, reference, relation))
                found = True
        if not found:
            named = f"its base {label(base)}" if len(ancestors) == 1 else \
                f"its parent {label(parent)} or its base {label(base)}"
            unpaired.append(f"{ckpt.name}: no run of {named} was given")
    return pairs, unpaired


def resolve_pairings(checkpoints: list[Checkpoint], base: Checkpoint | None) -> tuple[list[Pairing], list[str]]:
    if base is not None:
        return pair_with_base(base, checkpoints), []
    pairs, unpaired = pair_by_lineage(checkpoints)
    if not pairs:
        names = ", ".join(c.name for c in checkpoints)
        raise EvalsuiteError(
            f"No checkpoint among {names} has its parent or base among the runs (their lineage names none of them).",
            "add the run of the base model, or name it with --base RUN")
    return pairs, unpaired
