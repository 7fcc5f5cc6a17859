"""The training loop every stage shares, on Accelerate.

Accelerate places the model and data (one process, DDP, FSDP or DeepSpeed, as ``accelerate launch``
says), runs bfloat16 autocast on GPUs, accumulates gradients (``accumulate`` skips the gradient
all-reduce on all but the last micro-batch), clips, and saves and loads the training state. The
loop adds what it lacks: the data position (a step number, see ``packing.Schedule``), the learning
rate schedule (a function of that step), the guard that stops at a NaN or infinite loss before the
optimizer takes it, periodic atomic state saving, and validation.

A stage (``sft.SFTStage``, ``rm.RMStage``; PPO will be another) supplies four things: ``batch``
(the tensors of a micro-batch of example indices), ``loss`` (the *summed* loss of a micro-batch and
summed statistics), ``weight`` (what the step's loss is averaged over: response tokens for SFT,
prompts for the reward model) and ``evaluate``. The loss of a step is the sum over every process
and micro-batch divided by the step's total weight, so it does not depend on how the step is cut
into micro-batches or processes.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.trainers.batches import Batch
from evalsuite.trainers.checkpoint import latest_state, load_state, save_state
from evalsuite.trainers.losses import lr_at, warmup_steps
from evalsuite.trainers.packing import Schedule


class Stage(Protocol):
    name: str
    has_valid: bool

    def batch(self, indices: list[int]) -> Batch: ...

    def loss(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def weight(self, indices: list[int]) -> float: ...

    def evaluate(self, model, accelerator) -> dict: ...

    def describe(self, record: dict) -> str: ...


@dataclass
class Run:
    accelerator: object
    config: object
    work: Path
    schedule: Schedule
    resuming: bool


def make_accelerator(config):
    """One process, or the processes ``accelerate launch`` started; bf16 autocast on GPUs."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from evalsuite.models.loading import resolve_device

    device = resolve_device(config.device)
    on_gpu = device.type == "cuda"
    mixed = "no"
    if config.dtype == "bfloat16" or (config.dtype == "auto" and on_gpu):
        mixed = "bf16" if not on_gpu or torch.cuda.is_bf16_supported() else "fp16"
    accelerator = Accelerator(cpu=not on_gpu, mixed_precision=mixed, gradient_accumulation_steps=config.grad_accum)
    set_seed(config.seed, device_specific=True)  # dropout differs between processes; weights are broadcast
    if accelerator.is_main_process and accelerator.num_processes > 1:
        print(f"{accelerator.num_processes} processes ({accelerator.distributed_type}), global batch "
              f"{config.batch_size * config.grad_accum * accelerator.num_processes}")
    return accelerator


def start(config, flag: str = "--model", spec: str | None = None):
    """The accelerator, the starting checkpoint's folder and its tokenizer; a reward model is refused
    before any data is read (it is no starting point for a causal LM)."""
    from evalsuite.models.loading import check_kind, load_tokenizer, resolve_model_path

    accelerator = make_accelerator(config)
    path = resolve_model_path(config.model if spec is None else spec, flag)
    check_kind(path, "causal", flag)
    return accelerator, path, load_tokenizer(path, config.trust_remote_code, flag)


def optimizer_for(model, config) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; matrices decay, norms and biases do not."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    # the fused kernel (CPU and CUDA) is three times faster than the per-tensor loop on a CPU
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, fused=True,
                             betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps)


def new_state() -> dict:
    return {"step": 0, "tokens": 0, "examples": 0, "train_seconds": 0.0, "history": [], "evals": []}


def train(run: Run, model, optimizer, stage: Stage) -> dict:
    """Run (or resume) every optimizer step of ``run.schedule``; returns the trainer state."""
    acc, config, schedule = run.accelerator, run.config, run.schedule
    state = new_state()
    resume_from = latest_state(run.work) if run.resuming else None
    if resume_from is not None:
        state = load_state(acc, resume_from)
        say(acc, f"resumed from {resume_from} (step {state['step']} of {schedule.total_steps})")
    if state["step"] == 0 and config.eval_before and stage.has_valid:
        state["evals"].append(evaluate(run, model, stage, 0))
    from tqdm.auto import tqdm

    bar = tqdm(total=schedule.total_steps, initial=state["step"], desc=f"train {stage.name}",
               disable=not acc.is_main_process, dynamic_ncols=True)
    while state["step"] < schedule.total_steps:
        step = state["step"]
        record = train_step(run, model, optimizer, stage, step)
        state["step"] += 1
        state["tokens"] += record["tokens"]
        state["examples"] += record["examples"]
        state["train_seconds"] += record["seconds"]
        state["history"].append(record)
        bar.update(1)
        bar.set_postfix_str(stage.describe(record) + f" lr {record['lr']:.2e} {record['tokens_per_s']:.0f} tok/s")
        done, epoch_end = state["step"] == schedule.total_steps, schedule.ends_epoch(step)
        periodic = config.eval_every and state["step"] % config.eval_every == 0
        if stage.has_valid and (done or epoch_end or periodic):
            state["evals"].append(evaluate(run, model, stage, state["step"]))
        if done or epoch_end or (config.save_every and state["step"] % config.save_every == 0):
            save_state(acc, run.work, state["step"], state)
    bar.close()
    return state


def train_step(run: Run, model, optimizer, stage: Stage, step: int) -> dict:
    """One optimizer step: every micro-batch of this process, accumulated, then clipped and applied."""
    acc, config, schedule = run.accelerator, run.config, run.schedule
    started = time.perf_counter()
    total = schedule.total_steps
    lr = lr_at(step, total, config.lr, warmup_steps(total, config.warmup_ratio), config.min_lr_ratio)
    for group in optimizer.param_groups:
        group["lr"] = lr
    examples = schedule.step_examples(step)
    # Accelerate divides by the accumulation steps and DDP averages over processes: undo both, so
    # the gradient is that of (sum of the step's losses) / (the step's weight).
    scale = acc.num_processes * acc.gradient_accumulation_steps / stage.weight(examples)
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=acc.device))
    for indices in schedule.micro_batches(step, acc.process_index):
        batch = stage.batch(indices).to(acc.device)
        with acc.accumulate(model):
            loss, stats = stage.loss(model, batch)
            acc.backward(loss * scale)
        sums["loss"] += loss.detach().float()
        sums["tokens"] += batch.tokens if indices else 0
        for key, value in stats.items():
            sums[key] += value.detach().float()
    keys = sorted(sums)
    reduced = dict(zip(keys, acc.reduce(torch.stack([sums[k] for k in keys]), reduction="sum").tolist()))
    if not math.isfinite(reduced["loss"]):
        raise nonfinite(run, step, "loss", lr)
    norm = acc.clip_grad_norm_(model.parameters(), config.max_grad_norm or float("inf"))
    norm = float(norm) if norm is not None else None
    if norm is not None and not math.isfinite(norm):
        raise nonfinite(run, step, "gradient", lr)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - started
    weight = stage.weight(examples)
    record = {"step": step + 1, "epoch": schedule.epoch_of(step) + 1, "loss": reduced.pop("loss") / weight,
              "lr": lr, "grad_norm": norm, "examples": len(examples), "tokens": int(reduced.pop("tokens")),
              "seconds": round(seconds, 4)}
    record["tokens_per_s"] = record["tokens"] / seconds if seconds else 0.0
    return record | {k: v for k, v in reduced.items()}


def nonfinite(run: Run, step: int, what: str, lr: float) -> EvalsuiteError:
    kept = latest_state(run.work)
    where = f"the last good state (step {int(kept.name.split('-')[1])}) is kept in {kept}" if kept else \
        "no state was saved before it"
    return EvalsuiteError(
        f"The {what} became NaN or infinite at step {step + 1} (epoch {run.schedule.epoch_of(step) + 1}, "
        f"learning rate {lr:.3g}); nothing was saved from that step and {where}.",
        f"lower --lr (now {run.config.lr:g}) or --max-grad-norm (now {run.config.max_grad_norm:g}) and run "
        "again: the same command with only those changed resumes from the kept state",
    )


def evaluate(run: Run, model, stage: Stage, step: int) -> dict:
    model.eval()
    with torch.no_grad():
        metrics = stage.evaluate(model, run.accelerator)
    model.train()
    record = {"step": step, "epoch": run.schedule.epoch_of(max(0, step - 1)) + (1 if step else 0), **metrics}
    say(run.accelerator, f"validation at step {step}: {stage.describe(record)}")
    return record


def shard(items: list, accelerator) -> list:
    """This process's share of ``items`` for validation (every ``num_processes``-th item)."""
    return items[accelerator.process_index :: accelerator.num_processes]


def say(accelerator, text: str) -> None:
    if accelerator.is_main_process:
        from tqdm.auto import tqdm

        tqdm.write(text)


def on_main(accelerator, work):
    """``work()`` on the main process only; every process returns its result or raises its error
    (so that a refusal on the main process does not leave the others waiting)."""
    result = [None]
    if accelerator.is_main_process:
        try:
            result = [("ok", work())]
        except EvalsuiteError as err:
            result = [("error", (err.problem, err.fix))]
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        result = broadcast_object_list(result)
    kind, value = result[0]
    if kind == "error":
        raise EvalsuiteError(*value)
    return value


# --- around the loop: claiming the output, preparing, exporting ----------------------------------


def claim_output(accelerator, config, files: list[dict]) -> list[str] | None:
    """Check ``--output`` and take its work folder (main process); None = a fresh start."""
    from evalsuite.trainers.checkpoint import claim

    identity = {"stage": config.stage, "config": config.to_dict(), "data": [f["sha256"] for f in files]}
    changes = on_main(accelerator, lambda: claim(Path(config.output), identity, config.overwrite))
    if changes:
        say(accelerator, f"resuming with changed settings: {'; '.join(changes)}")
    return changes


def prepare(accelerator, config, module, n_examples: int, resuming: bool, lengths: list[int] | None = None):
    """The optimizer, the Accelerate-prepared module and optimizer, and the run's schedule
    (``lengths`` of the examples: batches grouped by length, for padded rows)."""
    from evalsuite.trainers.checkpoint import work_folder

    optimizer = optimizer_for(module, config)
    module, optimizer = accelerator.prepare(module, optimizer)
    schedule = Schedule(n_examples, config.batch_size, config.grad_accum, accelerator.num_processes,
                        config.epochs, config.max_steps, config.seed, config.shuffle, lengths)
    run = Run(accelerator, config, work_folder(Path(config.output)), schedule, resuming)
    return run, module, optimizer


def run_facts(run: Run, state: dict, started: float) -> dict:
    """What the manifest says about the run itself."""
    acc = run.accelerator
    return {
        "steps": state["step"],
        "epochs": run.schedule.epoch_of(max(0, state["step"] - 1)) + 1,
        "examples_seen": state["examples"],
        "tokens": state["tokens"],
        "train_tokens_per_second": round(state["tokens"] / max(state["train_seconds"], 1e-9), 2),
        "seed": run.config.seed,
        "wall_seconds": round(time.time() - started, 1),
        "device": {"type": acc.device.type, "name": str(acc.device), "processes": acc.num_processes,
                   "distributed": acc.distributed_type.value, "mixed_precision": str(acc.mixed_precision)},
    }


def unwrapped_state_dict(accelerator, module) -> dict:
    """The full state dict of the wrapped ``module.model`` (gathered under FSDP/ZeRO-3), keys as
    the Hugging Face model names them."""
    state = accelerator.get_state_dict(module)
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def finish(run: Run, write_model, manifest: dict, state: dict) -> None:
    """Export the final checkpoint atomically (main process), then drop the work folder."""
    import shutil

    from evalsuite.trainers.checkpoint import export

    acc = run.accelerator
    if acc.is_main_process:
        export(Path(run.config.output), write_model, manifest, state["history"], run.config.to_dict())
        shutil.rmtree(run.work, ignore_errors=True)
    acc.wait_for_everyone()


def fused_head_ok(accelerator) -> bool:
    """The fused head loss reads the head's weights outside their module's own call, which sharded
    engines (FSDP, DeepSpeed) do not allow: they get plain autograd instead."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED)
