"""``evalsuite train STAGE [options]``: the trainer's command line (``evalsuite.cli`` hands it over).

Each stage module has ``main(argv) -> int`` taking the options after the stage name; a new stage
is one more entry in ``STAGES``.
"""

from __future__ import annotations

import importlib

from evalsuite.errors import EvalsuiteError

STAGES = {
    "sft": ("evalsuite.trainers.sft", "supervised fine-tuning on demonstrations (loss on response tokens only)"),
    "rm": ("evalsuite.trainers.rm", "a reward model on ranked comparisons (K-choose-2 loss); --eval-only scores one"),
    "ppo": ("evalsuite.trainers.ppo", "PPO against a reward model with a KL penalty; --ptx-coef for PPO-ptx"),
}

USAGE = "usage: evalsuite train {" + ",".join(STAGES) + "} [options]   (evalsuite train STAGE --help for options)"


def main(argv: list[str]) -> int:
    args = argv[1:] if argv and argv[0] == "train" else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        for name, (_, help_line) in STAGES.items():
            print(f"  {name:<5} {help_line}")
        return 0 if args else 2
    stage, rest = args[0], args[1:]
    if stage not in STAGES:
        raise EvalsuiteError(f"Unknown training stage '{stage}'.", f"use one of: {', '.join(STAGES)}")
    return importlib.import_module(STAGES[stage][0]).main(rest)
