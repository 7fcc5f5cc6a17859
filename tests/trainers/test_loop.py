"""The shared loop as a user runs it: killed with -9 and resumed by the same command, and under
``accelerate launch`` with two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.trainers.helpers import DEMOS, read_log, read_manifest, write_jsonl

MORE_DEMOS = [d | {"output": f"{d['output']} ({i})"} for i in range(3) for d in DEMOS]  # 24 demonstrations


def sft_command(tiny_model_dir, data: str, output, *extra) -> list[str]:
    return ["-m", "evalsuite", "train", "sft", "--model", str(tiny_model_dir), "--data", data, "--output", str(output),
            "--lr", "3e-3", "--device", "cpu", "--no-eval-before", *extra]


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_kill_9_then_the_same_command_ends_with_the_same_weights(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "demos.jsonl", MORE_DEMOS)
    # residual dropout draws random numbers every step: the resumed run must restore the RNG exactly
    extra = ("--batch-size", "2", "--max-steps", "24", "--save-every", "4", "--residual-dropout", "0.1")
    killed = tmp_path / "killed"
    command = [sys.executable, *sft_command(tiny_model_dir, data, killed, *extra)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed.training" / "state"
    deadline = time.time() + 300
    while not list(state.glob("step-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(p.name for p in state.glob("step-*"))
    assert saved and saved[-1] < "step-00000024", "the kill should land after a state was saved, before the end"
    assert not killed.exists()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, *sft_command(tiny_model_dir, data, fresh, *extra)], check=True,
                   capture_output=True, timeout=600)
    resumed, uninterrupted = weights(killed), weights(fresh)
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    assert [r["loss"] for r in read_log(killed)] == [r["loss"] for r in read_log(fresh)]
    assert read_manifest(killed)["steps"] == 24


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "demos.jsonl", MORE_DEMOS)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run(launcher + sft_command(tiny_model_dir, data, tmp_path / "dp", "--batch-size", "3",
                                          "--max-steps", "5"), check=True, capture_output=True, env=env, timeout=600)
    subprocess.run([sys.executable, *sft_command(tiny_model_dir, data, tmp_path / "one", "--batch-size", "6",
                                                 "--max-steps", "5")], check=True, capture_output=True, timeout=600)
    dp, one = read_log(tmp_path / "dp"), read_log(tmp_path / "one")
    assert read_manifest(tmp_path / "dp")["device"]["processes"] == 2
    assert [r["examples"] for r in dp] == [r["examples"] for r in one] == [6, 6, 6, 6, 6]
    assert [r["loss"] for r in dp] == pytest.approx([r["loss"] for r in one], rel=1e-5)
    assert [r["tokens"] for r in dp] == [r["tokens"] for r in one]
    a, b = weights(tmp_path / "dp"), weights(tmp_path / "one")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
