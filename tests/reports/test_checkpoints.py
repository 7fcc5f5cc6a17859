"""Which checkpoint is compared with which, from the lineage the runs recorded (base -> SFT -> PPO,
PPO-ptx), and how the report draws that lineage."""

from __future__ import annotations

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.reports.checkpoints import Checkpoint, _unique_names, pair_by_lineage, pair_with_base, resolve_pairings
from evalsuite.reports.report import lineage_tree

ENTRIES = {s: {"stage": s, "path": f"ckpt/{s}", "fingerprint": f"fp-{s}"} for s in ("base", "sft", "ppo", "ppo-ptx")}


def checkpoint(stage: str, *ancestors: str) -> Checkpoint:
    lineage = [ENTRIES[a] for a in ancestors] + [ENTRIES[stage]]
    return Checkpoint(stage, f"fp-{stage}", stage, lineage)


def pairs_of(checkpoints):
    pairs, unpaired = pair_by_lineage(checkpoints)
    return {(p.checkpoint.name, p.reference.name, p.relation) for p in pairs}, unpaired


def test_each_checkpoint_against_its_parent_and_its_base():
    found, unpaired = pairs_of([checkpoint("base"), checkpoint("sft", "base"), checkpoint("ppo", "base", "sft"),
                                checkpoint("ppo-ptx", "base", "sft")])
    assert found == {("sft", "base", "base"), ("ppo", "sft", "parent"), ("ppo", "base", "base"),
                     ("ppo-ptx", "sft", "parent"), ("ppo-ptx", "base", "base")}
    assert unpaired == []


def test_without_the_base_run_only_parents_pair_and_orphans_are_listed():
    found, unpaired = pairs_of([checkpoint("ppo", "base", "sft"), checkpoint("sft", "base")])
    assert found == {("ppo", "sft", "parent")}
    assert unpaired == ["sft: no run of its base base was given"]
    with pytest.raises(EvalsuiteError, match="No checkpoint among ppo has its parent or base"):
        resolve_pairings([checkpoint("ppo", "base", "sft")], None)


def test_base_flag_pairs_everything_with_it_and_refuses_itself():
    base = checkpoint("base")
    pairs = pair_with_base(base, [checkpoint("ppo", "base", "sft")])
    assert [(p.checkpoint.name, p.reference.name, p.relation) for p in pairs] == [("ppo", "base", "given")]


def test_names_stay_unique():
    a, b = Checkpoint("checkpoint-1000", "fp1", "sft", []), Checkpoint("checkpoint-1000", "fp2", "ppo", [])
    c, d = Checkpoint("final", "abcdef1234", "ppo", []), Checkpoint("final", "123456789a", "ppo", [])
    _unique_names([a, b, c, d])
    assert [x.name for x in (a, b, c, d)] == ["sft:checkpoint-1000", "ppo:checkpoint-1000", "ppo:final@abcdef12",
                                               "ppo:final@12345678"]


def test_lineage_tree_shows_ancestors_without_runs_in_place():
    tree = lineage_tree([checkpoint("ppo", "base", "sft"), checkpoint("ppo-ptx", "base", "sft")])
    assert len(tree) == 1 and tree[0]["stage"] == "base" and not tree[0]["evaluated"]
    sft = tree[0]["children"][0]
    assert sft["name"] == "sft" and not sft["evaluated"]
    assert [(c["name"], c["evaluated"]) for c in sft["children"]] == [("ppo", True), ("ppo-ptx", True)]
