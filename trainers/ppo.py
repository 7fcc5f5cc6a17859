"""``evalsuite train ppo``: PPO against a reward model with a per-token KL penalty to the SFT
policy, InstructGPT's third stage; with ``--ptx-data``, PPO-ptx.

Read top to bottom. Each step takes a batch of prompts and
1. samples one response per prompt from the policy (``rollout.sample``: evalsuite's batched
   generation), and lays the episodes out in rows, packed without padding where the attention
   allows it (``rollout.Layout``, ``--packing``);
2. scores them in one batched pass per model: the policy's and the frozen SFT policy's
   log-probabilities of every response token, the value of every state, the reward model's score
   at the response's EOS (``rollout``), less ``--missing-eos-penalty`` for a response that did not end;
3. turns the scores into per-token rewards ``-beta KL_t`` plus the score on the last token, and
   those into advantages and returns by GAE, whitened over the batch (``ppo_core``);
4. runs ``--ppo-epochs`` passes over minibatches of the batch, each one optimizer step on
   ``policy loss + value_coef * value loss + ptx_coef * pretraining NLL`` (``update``);
5. logs the step, warns about the known failure modes, and saves the training state now and then.

Policy and value are separate networks (the value starts from the reward model, as in InstructGPT):
a shared backbone would let the value loss, whose scale is the reward's, pull the policy's
representations, and the value could not start from the reward model then.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evalsuite.errors import EvalsuiteError
from evalsuite.models.chat import use_chat_template
from evalsuite.models.hf import HFModel
from evalsuite.models.loading import check_kind, load_tokenizer, load_weights, resolve_model_path
from evalsuite.trainers import loop, modeling, ppo_core, rollout
from evalsuite.trainers.checkpoint import build_manifest, latest_state, load_state, parent, save_state, work_folder
from evalsuite.trainers.config import PPOConfig, resolve
from evalsuite.trainers.formats import load_all
from evalsuite.trainers.losses import lr_at, warmup_steps
from evalsuite.trainers.packing import Schedule
from evalsuite.trainers.splits import select

# --- the trained module: policy and value, one forward for DDP ----------------------------------


class PolicyValue(nn.Module):
    """The policy's log-probabilities of the response tokens, the value of every state, and (for
    PPO-ptx) the policy's summed NLL of pretraining rows, all in one forward call, so that every
    parameter DDP, FSDP or DeepSpeed manages is used inside it."""

    def __init__(self, policy, value, fused: bool):
        super().__init__()
        self.policy, self.value, self.fused = policy, value, fused

    def forward(self, input_ids, attention_mask, position_ids, row, cols, targets, mask, last, ptx_rows=None):
        tokens = rollout.Tokens(input_ids, attention_mask, position_ids, row, cols, targets, mask, last)
        logp, _ = rollout.token_logprobs(self.policy, tokens)
        values = rollout.token_values(self.value, tokens)
        ptx = rollout.ptx_nll(self.policy, ptx_rows, self.fused) if ptx_rows is not None else None
        return logp, values, ptx


def model_inputs(tokens: rollout.Tokens) -> dict:
    return {f.name: getattr(tokens, f.name) for f in fields(tokens)}


# --- one step ------------------------------------------------------------------------------------


class Stepper:
    """Everything a PPO step needs, built once by ``train``."""

    def __init__(self, run: loop.Run, module, optimizer, engine, ref, scorer, ptx, layout: rollout.Layout,
                 prompts: list[list[int]], ema):
        self.run, self.config, self.acc, self.schedule = run, run.config, run.accelerator, run.schedule
        self.module, self.optimizer, self.engine, self.ref, self.scorer = module, optimizer, engine, ref, scorer
        self.ptx, self.layout, self.prompts, self.ema = ptx, layout, prompts, ema
        config = self.config
        self.minibatches = math.ceil(config.batch_size / config.mini_batch_size)
        self.total_updates = self.schedule.total_steps * config.ppo_epochs * self.minibatches
        self.kl = ppo_core.AdaptiveKL(config.kl_coef, config.kl_target, config.kl_horizon)

    def my_prompts(self, step: int) -> list[int]:
        """This process's prompts of ``step``: its chunk of the schedule's batch, topped up from the
        start of the epoch's order when the data runs short (every process runs full batches)."""
        mine = self.schedule.micro_batches(step, self.acc.process_index)[0]
        order = self.schedule.order(self.schedule.epoch_of(step))
        return (mine + order * self.config.batch_size)[: self.config.batch_size]

    # 1-2: rollout and scoring
    @torch.no_grad()
    def collect(self, step: int, indices: list[int]) -> dict:
        c, acc = self.config, self.acc
        started = time.perf_counter()
        seeds = [rollout.episode_seed(c.seed, step, i) for i in indices]
        with acc.autocast():
            episodes = rollout.sample(self.engine, [self.prompts[i] for i in indices], seeds, c.response_length,
                                      c.temperature, c.top_p)
        generated = time.perf_counter()
        tokens = self.layout(episodes).to(acc.device)
        policy = acc.unwrap_model(self.module)
        with acc.autocast():
            logp, entropy = rollout.token_logprobs(policy.policy, tokens, with_entropy=True)
            ref_logp, _ = rollout.token_logprobs(self.ref, tokens)
            values = rollout.token_values(policy.value, tokens)
            raw = self.scorer(episodes, tokens).float()
        ended = torch.tensor(episodes.ended, dtype=torch.float32, device=acc.device)
        return {"episodes": episodes, "tokens": tokens, "logp": logp, "ref_logp": ref_logp, "entropy": entropy,
                "values": values, "raw_scores": raw, "ended": ended,
                "gen_seconds": generated - started, "score_seconds": time.perf_counter() - generated}

    # 3: rewards and advantages
    def advantages(self, batch: dict, step: int) -> dict:
        c, acc = self.config, self.acc
        mask, raw = batch["tokens"].mask, batch["raw_scores"]
        finite = acc.reduce(torch.isfinite(raw).all().float()[None], reduction="sum")
        if int(finite) != acc.num_processes:
            raise nonfinite_scores(self, step)
        scores = ppo_core.clip_scores(raw - c.missing_eos_penalty * (1.0 - batch["ended"]), c.score_clip)
        if c.score_norm:
            ones = torch.ones_like(scores)[:, None]
            mean, var = global_moments(acc, scores[:, None], ones)
            scores = ppo_core.whiten(scores[:, None], ones, mean, var)[:, 0]
        kl = ppo_core.kl_estimate(batch["logp"], batch["ref_logp"], c.kl_estimator) * mask
        rewards = ppo_core.shaped_rewards(scores, kl, mask, self.kl.beta)
        adv, returns = ppo_core.gae(rewards, batch["values"], mask, c.discount, c.gae_lambda)
        if c.whiten_advantages:
            adv = ppo_core.whiten(adv, mask, *global_moments(acc, adv, mask))
        return batch | {"scores": scores, "kl": kl, "advantages": adv, "returns": returns}

    # 4: the PPO epochs
    def update(self, batch: dict, step: int) -> dict:
        c, acc = self.config, self.acc
        sums: dict[str, float] = defaultdict(float)
        n = len(batch["episodes"].prompts)
        for epoch in range(c.ppo_epochs):
            order = np.random.default_rng([c.seed, step, epoch]).permutation(n)
            for m in range(self.minibatches):
                rows = torch.as_tensor(order[m * c.mini_batch_size : (m + 1) * c.mini_batch_size], device=acc.device)
                update = (step * c.ppo_epochs + epoch) * self.minibatches + m
                ptx_rows = self.draw_ptx(step, epoch, m)
                stats = self.minibatch_step(batch, rows, ptx_rows, update, step)
                for key, value in stats.items():
                    sums[key] += value
        return {k: v / (c.ppo_epochs * self.minibatches) for k, v in sums.items()}

    def draw_ptx(self, step: int, epoch: int, minibatch: int) -> torch.Tensor | None:
        if self.ptx is None:
            return None
        rng = np.random.default_rng([self.config.seed, step, epoch, minibatch, self.acc.process_index, 17])
        return self.ptx.draw(rng, self.config.ptx_batch_size).to(self.acc.device)

    def minibatch_step(self, batch: dict, rows: torch.Tensor, ptx_rows, update: int, step: int) -> dict:
        c, acc = self.config, self.acc
        lr = lr_at(update, self.total_updates, c.lr, warmup_steps(self.total_updates, c.warmup_ratio), c.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        tokens = self.layout(batch["episodes"].subset(rows.tolist())).to(acc.device)
        steps = tokens.mask.shape[1]

        def part(name):
            return batch[name].index_select(0, rows)[:, :steps]

        with acc.autocast():
            logp, values, ptx = self.module(**model_inputs(tokens), ptx_rows=ptx_rows)
        mask = tokens.mask
        pg, pg_stats = ppo_core.policy_loss(logp, part("logp"), part("advantages"), mask, c.clip_range)
        value_clip = c.value_clip if c.value_clip > 0 else float("inf")
        vf, vf_stats = ppo_core.value_loss(values, part("values"), part("returns"), mask, value_clip)
        loss = pg + c.value_coef * vf
        ptx_loss = torch.zeros((), device=acc.device)
        if ptx is not None:
            ptx_loss = ptx[0] / ptx[1]
            loss = loss + c.ptx_coef * ptx_loss
        acc.backward(loss)
        total = acc.reduce(loss.detach().float()[None], reduction="sum")
        if not math.isfinite(float(total)):
            raise loop.nonfinite(self.run, step, "loss", lr)
        norm = acc.clip_grad_norm_(self.module.parameters(), c.max_grad_norm or float("inf"))
        norm = float(norm) if norm is not None else float("nan")
        if not math.isfinite(norm):
            raise loop.nonfinite(self.run, step, "gradient", lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()
        stats = {"policy_loss": pg, "value_loss": vf, "ptx_loss": ptx_loss, **pg_stats, **vf_stats}
        return {k: float(torch.as_tensor(v).detach()) for k, v in stats.items()} | {"grad_norm": norm, "lr": lr}

    # the step, logged
    def step(self, step: int) -> dict:
        c = self.config
        started = time.perf_counter()
        indices = self.my_prompts(step)
        batch = self.advantages(self.collect(step, indices), step)
        updated = time.perf_counter()
        stats = self.update(batch, step)
        record = self.record(step, batch, stats)
        record |= {"seconds": round(time.perf_counter() - started, 4),
                   "update_seconds": round(time.perf_counter() - updated, 4)}
        record["episodes_per_s"] = record["episodes"] / record["seconds"]
        record["gen_tokens_per_s"] = record["generated_tokens"] / max(record["gen_seconds"], 1e-9)
        record["beta"] = self.kl.beta
        self.kl.update(record["kl"], record["episodes"])
        if c.sample_every and (step == 0 or (step + 1) % c.sample_every == 0):
            record["samples"] = [{"prompt": self.engine.tokenizer.decode(p), "response": t}
                                 for p, t in zip(batch["episodes"].prompts[:2], batch["episodes"].texts[:2])]
        return record

    def record(self, step: int, batch: dict, stats: dict) -> dict:
        """The step's numbers over every process: sums reduced, then divided."""
        acc, mask = self.acc, batch["tokens"].mask
        lengths = mask.sum(1)
        raw = batch["raw_scores"]
        sums = {
            "episodes": float(len(raw)), "score_sum": raw.sum(), "score_sq": (raw ** 2).sum(),
            "shaped_sum": batch["scores"].sum(), "kl_sum": batch["kl"].sum(),
            "entropy_sum": (batch["entropy"] * mask).sum(),
            "response_tokens": lengths.sum(), "eos_missing": (1.0 - batch["ended"]).sum(),
            "tokens": float(batch["episodes"].tokens), "gen_seconds": batch["gen_seconds"],
            "score_seconds": batch["score_seconds"],
            "distinct": float(len(set(batch["episodes"].texts))), **stats,
        }
        keys = sorted(sums)
        values = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=acc.device)
        total = dict(zip(keys, acc.reduce(values, reduction="sum").tolist()))
        n, procs = total["episodes"], acc.num_processes
        mean = total["score_sum"] / n
        record = {
            "step": step + 1, "epoch": self.schedule.epoch_of(step) + 1, "episodes": int(n),
            "score_mean": mean, "score_std": math.sqrt(max(0.0, total["score_sq"] / n - mean ** 2)),
            "shaped_score_mean": total["shaped_sum"] / n, "kl": total["kl_sum"] / n,
            "entropy": total["entropy_sum"] / max(1.0, total["response_tokens"]),
            "response_length": total["response_tokens"] / n, "eos_missing": int(total["eos_missing"]),
            "distinct_share": total["distinct"] / n, "generated_tokens": int(total["response_tokens"]),
            "tokens": int(total["tokens"]), "examples": int(n),
            "gen_seconds": round(total["gen_seconds"] / procs, 4),
            "score_seconds": round(total["score_seconds"] / procs, 4),
        }
        for key in stats:
            record[key] = total[key] / procs
        return record


def global_moments(acc, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance of ``values`` on real tokens over every process."""
    sums = torch.stack([(values * mask).sum(), (values ** 2 * mask).sum(), mask.sum()]).double()
    s, sq, n = acc.reduce(sums, reduction="sum").tolist()
    mean = s / max(n, 1.0)
    var = (sq - n * mean ** 2) / max(n - 1.0, 1.0)
    return torch.tensor(mean, device=values.device), torch.tensor(max(var, 0.0), device=values.device)


def nonfinite_scores(stepper: Stepper, step: int) -> EvalsuiteError:
    kept = latest_state(stepper.run.work)
    where = f"the last good state (step {int(kept.name.split('-')[1])}) is kept in {kept}" if kept else \
        "no state was saved before it"
    return EvalsuiteError(f"The reward model's scores became NaN or infinite at step {step + 1}; nothing was "
                          f"saved from that step and {where}.",
                          "check the reward checkpoint (evalsuite train rm --eval-only scores it) and run again: "
                          "the same command resumes from the kept state")


# --- the failure modes ---------------------------------------------------------------------------


def warnings_for(history: list[dict], response_length: int) -> list[str]:
    """What the logs so far say about the known ways PPO goes wrong (checked after every step)."""
    last, first = history[-1], history[0]
    found = []
    if last["kl"] < -0.05:
        found.append(f"KL to the SFT policy is negative ({last['kl']:.3f}): the sampled tokens are not the policy's "
                     "own (a temperature or top-p other than 1 makes the k1 estimate biased)")
    recent = [h["kl"] for h in history[-5:]]
    if last["kl"] > 20 or (len(history) >= 5 and recent[0] > 0.1 and recent[-1] > 4 * recent[0]):
        found.append(f"KL to the SFT policy is exploding ({last['kl']:.2f} nats per episode): lower --lr, or raise "
                     "--kl-coef or set --kl-target")
    if len(history) >= 3 and last["distinct_share"] < 0.25 and last["score_mean"] > first["score_mean"]:
        found.append(f"the reward rises while responses collapse: only {last['distinct_share']:.0%} of this "
                     "batch's responses are distinct (reward hacking; raise --kl-coef)")
    if len(history) >= 3 and last["response_length"] > max(1.5 * first["response_length"], 0.9 * response_length):
        found.append(f"response length is running away ({first['response_length']:.1f} -> "
                     f"{last['response_length']:.1f} tokens; {last['eos_missing']} responses did not end)")
    return found


# --- the stage, top to bottom --------------------------------------------------------------------


def main(argv: list[str]) -> int:
    return train(resolve(PPOConfig, argv, "evalsuite train ppo"))


def train(config: PPOConfig, scorer=None) -> int:
    """The PPO stage; ``scorer(episodes, tokens) -> scores`` replaces the reward model's scores
    when given (the value function still starts from ``--reward``)."""
    started = time.time()
    accelerator, policy_path, tokenizer = loop.start(config, "--policy")
    reward_path = resolve_model_path(config.reward, "--reward")
    check_kind(reward_path, "reward", "--reward")
    check_same_tokenizer(tokenizer, load_tokenizer(reward_path, config.trust_remote_code, "--reward"))
    use_template = use_chat_template(tokenizer, config.chat_template, config.model)
    files = load_all(config.data, "prompts")
    prompts = [p for f in files for p in select(f.examples, config.split)]
    for f in files:
        kept = f"; {len(select(f.examples, config.split))} in split '{config.split}'" if config.split != "all" else ""
        loop.say(accelerator, f"prompts data {f.summary()}{kept}")
    if not prompts:
        raise EvalsuiteError(f"No prompts left after --split {config.split}.", "check --prompts, or use --split all")
    room = config.max_length - config.response_length
    prompt_ids, skipped = rollout.encode_prompts(tokenizer, prompts, use_template, room, config.overlong)
    if config.limit:
        prompt_ids = prompt_ids[: config.limit]
    ptx = rollout.load_ptx(config.ptx_data, tokenizer, config.ptx_length) if config.uses_ptx else None
    data = [f.describe() | {"role": "prompts", "split": config.split} for f in files] + (ptx.files if ptx else [])
    loop.say(accelerator, f"{len(prompt_ids)} prompts ({len(skipped)} skipped: too long); chat template "
                          f"{'on' if use_template else 'off'}" + (f"; {len(ptx.rows)} pretraining rows" if ptx else ""))
    resuming = loop.claim_output(accelerator, config, data) is not None

    policy, value = load_policy(policy_path, config), load_value(reward_path, config)
    layout = episode_layout(tokenizer, config, policy, value)
    ref = frozen(load_weights(policy_path, "causal", torch.float32, config.trust_remote_code, "--policy"))
    reward = None
    if scorer is None:
        reward = frozen(load_weights(reward_path, "reward", torch.float32, config.trust_remote_code, "--reward"))
        scorer = rollout.RewardScorer(reward.to(accelerator.device), config.eval_batch_size or config.batch_size,
                                     layout)
    ref.to(accelerator.device)
    module = PolicyValue(policy, value, loop.fused_head_ok(accelerator))
    optimizer = loop.optimizer_for(module, config)
    module, optimizer = accelerator.prepare(module, optimizer)
    ema = None
    if config.ema_decay:
        ema = ppo_core.EMA(accelerator.unwrap_model(module).policy, config.ema_decay)
        accelerator.register_for_checkpointing(ema)
    schedule = Schedule(len(prompt_ids), config.batch_size, 1, accelerator.num_processes, config.epochs,
                        config.max_steps, config.seed, config.shuffle)
    run = loop.Run(accelerator, config, work_folder(Path(config.output)), schedule, resuming)
    engine = HFModel.around(accelerator.unwrap_model(module).policy, tokenizer, config.batch_size, config.max_length,
                            use_template)
    stepper = Stepper(run, module, optimizer, engine, ref, scorer, ptx, layout, prompt_ids, ema)
    state = run_steps(stepper, run)

    final = accelerator.unwrap_model(module).policy
    if ema is not None:
        ema.copy_to()  # the saved policy is the average
    weights = {k.removeprefix("policy."): v for k, v in accelerator.get_state_dict(module).items()
               if k.startswith("policy.")}
    stage = "ppo-ptx" if config.uses_ptx else "ppo"
    manifest = build_manifest(
        stage, [parent("init", config.model, policy_path), parent("reward", config.reward, reward_path)], data,
        config.to_dict(), loop.run_facts(run, state, started), metrics(state),
        {"kl_coef_final": state["beta"], "format": {"chat_template": use_template, "max_length": config.max_length,
                                                      "response_length": config.response_length,
                                                      "packing": layout.attn is not None,
                                                      "skipped_too_long": skipped}},
    )
    loop.finish(run, lambda folder: save_policy(final, weights, tokenizer, folder), manifest, state)
    loop.say(accelerator, summary(state, stage, config.output))
    return 0


def run_steps(stepper: Stepper, run: loop.Run) -> dict:
    """Every step of the schedule, resumed from the newest saved state when there is one."""
    from tqdm.auto import tqdm

    acc, config, schedule = stepper.acc, stepper.config, stepper.schedule
    state = loop.new_state() | {"beta": config.kl_coef, "warned": []}
    resume_from = latest_state(run.work) if run.resuming else None
    if resume_from is not None:
        state = load_state(acc, resume_from)
        loop.say(acc, f"resumed from {resume_from} (step {state['step']} of {schedule.total_steps})")
    stepper.kl.beta = state["beta"]
    bar = tqdm(total=schedule.total_steps, initial=state["step"], desc="train ppo", disable=not acc.is_main_process,
               dynamic_ncols=True)
    while state["step"] < schedule.total_steps:
        record = stepper.step(state["step"])
        state["step"] += 1
        state["beta"] = stepper.kl.beta
        for key in ("tokens", "examples"):
            state[key] += record[key]
        state["train_seconds"] += record["seconds"]
        record["warnings"] = warnings_for(state["history"] + [record], config.response_length)
        for line in record["warnings"]:
            if line.split(":")[0] not in state["warned"]:  # each kind once, in full; all stay in the log
                state["warned"].append(line.split(":")[0])
                loop.say(acc, f"warning (step {record['step']}): {line}")
        for sample in record.get("samples", []):
            loop.say(acc, f"sample at step {record['step']}: {sample['prompt'][-80:]!r} -> "
                          f"{sample['response'][:120]!r}")
        state["history"].append(record)
        bar.update(1)
        bar.set_postfix_str(describe(record))
        done = state["step"] == schedule.total_steps
        if done or (config.save_every and state["step"] % config.save_every == 0):
            save_state(acc, run.work, state["step"], state)
    bar.close()
    return state


def check_same_tokenizer(policy_tok, reward_tok) -> None:
    """The reward and value models read the policy's tokens as they are, so both sides must share a
    vocabulary (re-tokenising text for them would give the value function other positions)."""
    if policy_tok.get_vocab() != reward_tok.get_vocab() or policy_tok.eos_token_id != reward_tok.eos_token_id:
        raise EvalsuiteError(
            "The policy and the reward model use different tokenizers; the value function starts from the reward "
            "model and reads the policy's tokens.",
            "train the reward model from the same base as the policy (evalsuite train rm --model SFT_CKPT)")


def episode_layout(tokenizer, config: PPOConfig, policy, value) -> rollout.Layout:
    """Episodes packed into rows of ``--max-length`` tokens when both networks' attention takes a
    4-D mask (``--packing auto``; the reference and reward models share their architectures),
    one padded row each otherwise."""
    kinds = {modeling.attention_kind(policy), modeling.attention_kind(value)}
    packed = all(modeling.use_packing(m, config.packing) for m in (policy, value)) and len(kinds) == 1
    return rollout.Layout(modeling.pad_token_id(tokenizer), kinds.pop() if packed else None, config.max_length)


def load_policy(path: str, config: PPOConfig):
    """The SFT policy in float32, in evaluation mode throughout (dropout would make the
    probability ratio of the first PPO epoch differ from 1)."""
    model = load_weights(path, "causal", torch.float32, config.trust_remote_code, "--policy", config.model)
    modeling.train_top_layers(model, config.train_layers, model.get_output_embeddings())
    if config.gradient_checkpointing:
        modeling.enable_checkpointing(model)
    return model.eval()


def load_value(path: str, config: PPOConfig):
    """The value function: the reward model itself, trained on (its score head applied at every position)."""
    model = load_weights(path, "reward", torch.float32, config.trust_remote_code, "--reward", config.reward)
    modeling.train_top_layers(model, config.train_layers, model.score)
    if config.gradient_checkpointing:
        modeling.enable_checkpointing(model)
    return model.eval()


def frozen(model):
    model.requires_grad_(False)
    return model.eval()


def save_policy(model, weights: dict, tokenizer, folder: Path) -> None:
    model.config.use_cache = True
    model.save_pretrained(folder, state_dict=weights, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def describe(record: dict) -> str:
    return (f"score {record['score_mean']:.3f}±{record['score_std']:.3f} kl {record['kl']:.3f} "
            f"len {record['response_length']:.1f} ent {record['entropy']:.2f} pg {record['policy_loss']:.3f} "
            f"vf {record['value_loss']:.3f} ptx {record['ptx_loss']:.3f} {record['episodes_per_s']:.2f} ep/s "
            f"{record['gen_tokens_per_s']:.0f} gen tok/s")


def metrics(state: dict) -> dict:
    history = state["history"]
    if not history:
        return {}
    first, last = history[0], history[-1]
    keys = ("score_mean", "score_std", "kl", "entropy", "response_length", "eos_missing", "ptx_loss")
    return {f"first_{k}": first[k] for k in keys} | {f"final_{k}": last[k] for k in keys} | {
        "episodes_per_s": state["examples"] / max(state["train_seconds"], 1e-9)}


def summary(state: dict, stage: str, output: str) -> str:
    m = metrics(state)
    if not m:
        return f"{stage}: no steps\ncheckpoint: {output}"
    return (f"{stage}: {state['step']} steps, {state['examples']} episodes, reward {m['first_score_mean']:.4f} -> "
            f"{m['final_score_mean']:.4f}, KL to SFT {m['final_kl']:.4f}, {m['episodes_per_s']:.2f} episodes/s"
            f"\ncheckpoint: {output}")
