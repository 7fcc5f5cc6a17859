"""``evalsuite train``: the stage dispatch, and the Accelerate configs shipped for GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.cli import main as evalsuite_main
from evalsuite.errors import EvalsuiteError
from evalsuite.trainers import cli

CONFIGS = Path(__file__).resolve().parents[2] / "trainers" / "configs"


def test_usage_and_unknown_stage(capsys):
    assert cli.main(["train"]) == 2
    assert "evalsuite train {sft,rm,ppo}" in capsys.readouterr().out
    assert cli.main(["train", "--help"]) == 0
    with pytest.raises(EvalsuiteError, match="Unknown training stage 'ppx'. Fix: use one of: sft, rm, ppo"):
        cli.main(["train", "ppx"])


def test_the_top_level_command_reaches_the_trainer(capsys):
    assert evalsuite_main(["train", "rm", "--eval-only"]) == 2
    assert "--eval-only needs the reward checkpoint to score" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        evalsuite_main(["train", "sft", "--help"])
    assert done.value.code == 0 and "--residual-dropout" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["fsdp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"])
def test_accelerate_reads_the_shipped_configs(name):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(CONFIGS / name)
    assert config.mixed_precision == "bf16" and not config.use_cpu
    if name.startswith("deepspeed"):
        assert config.distributed_type == "DEEPSPEED" and config.deepspeed_config["zero_stage"] == int(name[-6])
    else:
        assert config.distributed_type == "FSDP"
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
