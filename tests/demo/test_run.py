"""demo/run.sh end to end on a tiny random model with the real data and tiny sizes: every stage
runs, the checkpoints' manifests chain base -> SFT -> RM -> PPO / PPO-ptx, the tax table compares
every checkpoint with its base on every task, and a second run skips every finished stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.trainers.helpers import read_manifest

TINY = {"SFT_DEMOS": "8", "SFT_VALID": "4", "RM_COMPARISONS": "8", "RM_VALID": "4", "RM_TRAIN_LAYERS": "0",
        "MAX_LENGTH": "192", "PPO_STEPS": "1", "PPO_BATCH": "2", "PPO_MINI_BATCH": "2", "RESPONSE_LENGTH": "8",
        "REWARD_PROMPTS": "2", "EVAL_LIMIT": "2", "WIKITEXT_LIMIT": "1", "RTP_LIMIT": "1", "RTP_K": "1",
        "EVAL_BATCH": "4", "DEVICE": "cpu", "PPO_TRAIN_LAYERS": "0"}
TASKS = {"truthfulqa_mc1", "truthfulqa_mc2", "crows_pairs", "winogender", "squad_v2", "drop", "wikitext",
         "realtoxicityprompts"}


def run_demo(out, model, data_dir, home) -> str:
    env = os.environ | TINY | {"DEMO_DIR": str(out), "DEMO_MODEL": str(model), "EVALSUITE_DATA": str(data_dir),
                               "EVALSUITE_HOME": str(home), "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1",
                               "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "demo/run.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_the_demo_trains_evaluates_and_resumes(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "demo"
    first = run_demo(out, tiny_model_dir, data_dir, tmp_path / "home")
    ckpt = {name: read_manifest(out / "ckpt" / name) for name in ("sft", "rm", "ppo", "ppo-ptx")}
    assert {name: m["stage"] for name, m in ckpt.items()} == {"sft": "sft", "rm": "rm", "ppo": "ppo",
                                                             "ppo-ptx": "ppo-ptx"}
    assert ckpt["sft"]["parents"][0]["stage"] == "base"
    assert [p["role"] for p in ckpt["rm"]["parents"]] == ["init"] and ckpt["rm"]["parents"][0]["stage"] == "sft"
    for name in ("ppo", "ppo-ptx"):
        roles = {p["role"]: p["stage"] for p in ckpt[name]["parents"]}
        assert roles == {"init": "sft", "reward": "rm"}
        assert [step["stage"] for step in ckpt[name]["lineage"]] == ["base", "sft"]
        assert all(d["split"] == "heldout" for d in ckpt[name]["data"] if d["role"] == "prompts")
    assert all(d["split"] == "train" for d in ckpt["sft"]["data"] + ckpt["rm"]["data"] if d["role"] == "train")

    tax = json.loads((out / "tax" / "tax.json").read_text())
    vs_base = {c["checkpoint"]: c for c in tax["comparisons"] if c["relation"] == "base"}
    stages = {name: c["stage"] for name, c in tax["checkpoints"].items()}
    assert sorted(stages[name] for name in vs_base) == ["ppo", "ppo-ptx", "sft"]
    for comparison in vs_base.values():
        primary = {cell["task"] for cell in comparison["cells"] if cell["role"] == "primary"}
        assert primary == TASKS, comparison["refused"]
    assert (out / "report.html").stat().st_size > 0

    rewards = json.loads((out / "rewards.json").read_text())["policies"]
    assert list(rewards) == [str(out / "ckpt" / n) for n in ("sft", "ppo", "ppo-ptx")]
    assert rewards[str(out / "ckpt" / "sft")]["kl"][0] == 0.0  # the SFT policy is the KL reference
    assert "primary metrics" in first and "reward-model score" in first

    again = run_demo(out, tiny_model_dir, data_dir, tmp_path / "home")
    assert "== sft: done" in again and "== report: done" in again and "== run ppo-ptx rtp: done" in again
