"""``evalsuite train ppo`` on tiny random models: rollouts, scoring, a toy reward that PPO raises,
PPO-ptx's term, resume, and the refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evalsuite.cli import main as evalsuite_main
from evalsuite.errors import EvalsuiteError
from evalsuite.trainers import ppo, rollout
from evalsuite.trainers.config import PPOConfig, resolve
from tests.trainers.helpers import DEMOS, read_log, read_manifest, write_jsonl

PROMPTS = [{"prompt": f"Tell me about the number {i}."} for i in range(16)]


@pytest.fixture(scope="module")
def tiny_rm_dir(tiny_model_dir, tmp_path_factory):
    """A one-label reward model on the tiny model's backbone (a new random head), as ``train rm`` saves it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalsuite.trainers.modeling import reward_model_from, reward_pad_token

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    pad, pad_id = reward_pad_token(tokenizer)
    tokenizer.pad_token = pad
    torch.manual_seed(1)
    model = reward_model_from(AutoModelForCausalLM.from_pretrained(tiny_model_dir), pad_id)
    out = tmp_path_factory.mktemp("tiny-rm")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def peaked_policy_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model's shape with larger random weights: its next-token distributions are peaked
    (the default tiny model's are nearly uniform over 49k words, which no few steps can move)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.3
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("peaked")
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("prompts") / "prompts.jsonl", PROMPTS)


def config(tiny_model_dir, tiny_rm_dir, prompts, output, *extra) -> PPOConfig:
    argv = ["--policy", str(tiny_model_dir), "--reward", str(tiny_rm_dir), "--prompts", prompts, "--output",
            str(output), "--split", "all", "--batch-size", "8", "--mini-batch-size", "4", "--ppo-epochs", "2",
            "--response-length", "6", "--max-length", "64", "--device", "cpu", "--sample-every", "0", *extra]
    return resolve(PPOConfig, argv, "evalsuite train ppo")


class AlignedShare:
    """A toy reward: the share of response tokens whose input embedding (in the policy as it
    started) has a positive first coordinate, about half the vocabulary: a set the policy can reach
    by moving its final hidden state along one direction. A real callable over the episodes."""

    def __init__(self, policy_dir):
        from transformers import AutoModelForCausalLM

        embeddings = AutoModelForCausalLM.from_pretrained(policy_dir).get_input_embeddings().weight.detach()
        self.good = embeddings[:, 0] > 0

    def __call__(self, episodes, tokens):
        return (self.good[tokens.targets].float() * tokens.mask).sum(1) / tokens.mask.sum(1)


class TokenShare:
    """A toy reward: the share of response tokens whose id is below ``cut`` (about half of them at
    the start). A real callable over the episodes, in place of the reward model's score."""

    def __init__(self, cut: int):
        self.cut, self.calls = cut, 0

    def __call__(self, episodes, tokens):
        self.calls += 1
        return ((tokens.targets < self.cut).float() * tokens.mask).sum(1) / tokens.mask.sum(1)


def policy_weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


# --- the pieces ----------------------------------------------------------------------------------


def test_padded_layout_puts_each_response_token_after_its_prompt():
    episodes = rollout.Episodes([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], [False, True], ["", ""])
    tokens = rollout.Layout(pad_id=0)(episodes)
    assert tokens.input_ids.tolist() == [[5, 6, 7, 1, 2], [8, 3, 4, 9, 0]] and tokens.row.tolist() == [0, 1]
    assert tokens.cols.tolist() == [[2, 3, 0], [0, 1, 2]] and tokens.targets.tolist() == [[1, 2, 0], [3, 4, 9]]
    assert tokens.mask.tolist() == [[1, 1, 0], [1, 1, 1]] and tokens.last.tolist() == [4, 3]
    picked = rollout.Layout(pad_id=0)(episodes.subset([0]))
    assert picked.input_ids.tolist() == [[5, 6, 7, 1, 2]] and picked.mask.tolist() == [[1, 1]]
    assert episodes.tokens == 9


def test_packed_layout_puts_episodes_side_by_side_each_seeing_itself():
    episodes = rollout.Episodes([[5, 6, 7], [8], [7]], [[1, 2], [3, 4, 9], [2]], [False, True, True], ["", "", ""])
    tokens = rollout.Layout(pad_id=0, attn="sdpa", width=8)(episodes)
    # first-fit decreasing: the two 5-token episodes cannot share a row of 8; the 2-token one joins the first
    assert tokens.input_ids.tolist() == [[5, 6, 7, 1, 2, 7, 2], [8, 3, 4, 9, 0, 0, 0]]
    assert tokens.position_ids[0, :7].tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert tokens.row.tolist() == [0, 1, 0] and tokens.last.tolist() == [4, 3, 6]
    assert tokens.cols.tolist() == [[2, 3, 0], [0, 1, 2], [5, 0, 0]] and tokens.targets[2, 0] == 2
    seen = tokens.attention_mask[0, 0]
    assert seen[6].tolist() == [False] * 5 + [True, True]  # the second episode sees only itself
    assert seen[4].tolist() == [True] * 5 + [False] * 2


@pytest.mark.parametrize("attn", [None, "sdpa", "eager"])
def test_batched_passes_equal_one_episode_at_a_time(tiny_model_dir, tiny_rm_dir, attn):
    """The policy, value and reward passes over a batch, padded or packed, give what each episode
    alone gives, and the reward is the one ``RewardModel`` reads at the EOS of the same dialogue."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kind = {"attn_implementation": attn} if attn else {}
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, **kind).eval()
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_rm_dir, **kind).eval()
    episodes = rollout.Episodes([[10, 11, 12, 13], [20, 21], [22]], [[30, 31], [40, 41, 42, 43], [44, 45]],
                                [False, False, True], ["", "", ""])
    tokens = rollout.Layout(0, attn, 12)(episodes)
    assert tokens.input_ids.shape[0] == (3 if attn is None else 2)
    with torch.no_grad():
        logp, entropy = rollout.token_logprobs(policy, tokens, with_entropy=True)
        values, scores = rollout.token_values(rm, tokens), rollout.final_scores(rm, tokens)
        for i, (prompt, response) in enumerate(zip(episodes.prompts, episodes.responses)):
            ids = torch.tensor([prompt + response])
            logits = policy(ids).logits[0, len(prompt) - 1 : -1]
            alone = torch.log_softmax(logits, -1).gather(1, torch.tensor(response)[:, None])[:, 0]
            assert torch.allclose(logp[i, : len(response)], alone, atol=1e-5)
            assert torch.allclose(entropy[i, : len(response)], -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1),
                                  atol=1e-4)
            per_position = rm.score(rm.base_model(ids).last_hidden_state)[0, :, 0]
            assert torch.allclose(values[i, : len(response)], per_position[len(prompt) - 1 : -1], atol=1e-5)
            assert float(scores[i]) == pytest.approx(float(rm(ids).logits[0, 0]), abs=1e-5)
    assert float(logp[0, 2:].abs().sum()) == 0.0  # padding


def test_ptx_term_is_the_mean_token_nll(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    rows = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    total, count = rollout.ptx_nll(policy, rows, fused=True)
    with torch.no_grad():
        logits = policy(rows).logits[:, :-1]
    assert count == 6
    assert float(total.detach()) == pytest.approx(float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                               rows[:, 1:].reshape(-1), reduction="sum")), rel=1e-5)


def test_pretraining_text_from_plain_text_and_json_lines(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain = tmp_path / "text.txt"
    plain.write_text("one two three four five six seven eight nine ten " * 3)
    lines = write_jsonl(tmp_path / "docs.jsonl", [{"text": "alpha beta gamma delta"}, {"text": "short"}])
    ptx = rollout.load_ptx([str(plain), lines], tokenizer, 4)
    whole = tokenizer(plain.read_text(), add_special_tokens=False).input_ids
    assert ptx.rows[: len(whole) // 4].tolist() == [whole[s : s + 4] for s in range(0, len(whole) - 3, 4)]
    assert [f["rows"] for f in ptx.files] == [len(whole) // 4, 1] and ptx.files[0]["sha256"]
    with pytest.raises(EvalsuiteError, match="holds no run of 64 tokens"):
        rollout.load_ptx([lines], tokenizer, 64)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"body": "x"}])
    with pytest.raises(EvalsuiteError, match="line 1: a pretraining row needs a 'text' field"):
        rollout.load_ptx([bad], tokenizer, 4)


def test_sampling_is_seeded_per_episode(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalsuite.models.hf import HFModel

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    engine = HFModel.around(model, AutoTokenizer.from_pretrained(tiny_model_dir), 4, 64, False)
    prompts = [[1, 2, 3], [4, 5], [1, 2, 6], [7]]
    seeds = [rollout.episode_seed(0, 0, i) for i in range(4)]
    first = rollout.sample(engine, prompts, seeds, 5, 1.0, 1.0)
    engine.batch_size = 1  # other batches, the same samples
    again = rollout.sample(engine, prompts[::-1], seeds[::-1], 5, 1.0, 1.0)
    assert first.responses == again.responses[::-1] and all(len(r) == 5 for r in first.responses)
    assert not any(first.ended) and len(set(map(tuple, first.responses))) == 4


# --- the stage -----------------------------------------------------------------------------------


def test_packed_and_padded_rows_train_alike(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path):
    """Two rollout steps of two minibatches each, with episodes packed (three or so to a row of
    160 tokens) and padded (one a row): the same losses step by step and the same weights at the end."""
    logs, weights = {}, {}
    for packing in ("on", "off"):
        out = tmp_path / packing
        c = config(tiny_model_dir, tiny_rm_dir, prompts_file, out, "--max-steps", "2", "--packing", packing,
                   "--max-length", "160", "--save-every", "0", "--lr", "1e-3")
        assert ppo.train(c) == 0
        logs[packing], weights[packing] = read_log(out), policy_weights(out)
        assert read_manifest(out)["format"]["packing"] is (packing == "on")
    for on, off in zip(logs["on"], logs["off"]):
        for key in ("score_mean", "kl", "entropy", "policy_loss", "value_loss", "clip_frac", "approx_kl"):
            assert on[key] == pytest.approx(off[key], rel=1e-3, abs=1e-5), key
        assert on["tokens"] == off["tokens"] and on["episodes"] == off["episodes"] == 8
    assert all(torch.allclose(weights["on"][k], weights["off"][k], atol=1e-5) for k in weights["off"])


@pytest.mark.slow
def test_a_few_ppo_steps_raise_a_toy_reward(peaked_policy_dir, tiny_rm_dir, prompts_file, tmp_path):
    c = config(peaked_policy_dir, tiny_rm_dir, prompts_file, tmp_path / "ppo", "--max-steps", "8", "--lr", "3e-2",
               "--kl-coef", "0.0", "--ppo-epochs", "4", "--epochs", "4", "--save-every", "0")
    assert ppo.train(c, scorer=AlignedShare(peaked_policy_dir)) == 0
    log = read_log(tmp_path / "ppo")
    first, last = log[0]["score_mean"], sum(r["score_mean"] for r in log[-3:]) / 3
    assert last > first + 0.25, [r["score_mean"] for r in log]
    keys = {"score_mean", "score_std", "kl", "entropy", "response_length", "policy_loss", "value_loss", "clip_frac",
            "value_clip_frac", "approx_kl", "ptx_loss", "eos_missing", "episodes_per_s", "gen_tokens_per_s", "beta"}
    assert keys <= set(log[-1]) and all(math_ok(log[-1][k]) for k in keys)
    manifest = read_manifest(tmp_path / "ppo")
    assert manifest["stage"] == "ppo" and [p["role"] for p in manifest["parents"]] == ["init", "reward"]
    assert manifest["config"]["kl_coef"] == 0.0 and manifest["data"][0]["sha256"]


def math_ok(value) -> bool:
    return isinstance(value, (int, float)) and value == value


def test_ptx_coef_zero_does_nothing_and_ptx_changes_the_update(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(" ".join(d["instruction"] for d in DEMOS) * 20)
    common = ("--max-steps", "2", "--lr", "1e-3", "--ptx-length", "16", "--batch-size", "4", "--ppo-epochs", "1",
              "--response-length", "4")
    runs = {"plain": (), "zero": ("--ptx-data", str(text), "--ptx-coef", "0"),
            "ptx": ("--ptx-data", str(text), "--ptx-coef", "1.0")}
    for name, extra in runs.items():
        c = config(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path / name, *common, *extra)
        assert ppo.train(c, scorer=TokenShare(1000)) == 0
    plain, zero, mixed = (policy_weights(tmp_path / n) for n in runs)
    assert all(torch.equal(plain[k], zero[k]) for k in plain)  # bitwise: the ptx path never ran
    assert any(not torch.equal(plain[k], mixed[k]) for k in plain)
    assert read_manifest(tmp_path / "zero")["stage"] == "ppo"
    manifest = read_manifest(tmp_path / "ptx")
    assert manifest["stage"] == "ppo-ptx" and manifest["data"][-1]["role"] == "ptx"
    assert all(r["ptx_loss"] > 0 for r in read_log(tmp_path / "ptx"))
    assert all(r["ptx_loss"] == 0 for r in read_log(tmp_path / "zero"))


class Interrupted(Exception):
    pass


class StopAt(TokenShare):
    """The toy reward, with the process 'killed' when asked for the scores of step ``at``."""

    def __init__(self, cut: int, at: int):
        super().__init__(cut)
        self.at = at

    def __call__(self, episodes, tokens):
        if self.calls + 1 == self.at:
            raise Interrupted
        return super().__call__(episodes, tokens)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tiny_model_dir, tiny_rm_dir, prompts_file,
                                                                  tmp_path):
    extra = ("--max-steps", "4", "--save-every", "2", "--lr", "1e-3", "--ema-decay", "0.5", "--kl-target", "1.0",
             "--batch-size", "4", "--mini-batch-size", "2", "--response-length", "4")
    whole = config(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path / "whole", *extra)
    assert ppo.train(whole, scorer=TokenShare(1000)) == 0
    killed = config(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path / "killed", *extra)
    with pytest.raises(Interrupted):
        ppo.train(killed, scorer=StopAt(1000, at=4))  # dies in step 4, after the state of step 2 was saved
    assert (tmp_path / "killed.training" / "state" / "step-00000002").is_dir()
    assert ppo.train(killed, scorer=TokenShare(1000)) == 0
    a, b = policy_weights(tmp_path / "whole"), policy_weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    log_a, log_b = read_log(tmp_path / "whole"), read_log(tmp_path / "killed")
    for ra, rb in zip(log_a, log_b):
        assert (ra["score_mean"], ra["kl"], ra["beta"]) == (rb["score_mean"], rb["kl"], rb["beta"])


def test_nan_scores_stop_and_name_the_step(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path):
    class NaNAt(TokenShare):
        def __call__(self, episodes, tokens):
            scores = super().__call__(episodes, tokens)
            return scores * float("nan") if self.calls == 2 else scores

    c = config(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path / "ppo", "--max-steps", "3", "--save-every", "1")
    with pytest.raises(EvalsuiteError) as err:
        ppo.train(c, scorer=NaNAt(1000))
    assert "scores became NaN or infinite at step 2" in str(err.value) and "last good state (step 1)" in str(err.value)
    assert (tmp_path / "ppo.training" / "state" / "step-00000001").is_dir() and not (tmp_path / "ppo").exists()


def test_nan_loss_stops_and_names_the_step(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path):
    c = config(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path / "ppo", "--max-steps", "3", "--save-every", "1",
               "--lr", "1e30", "--max-grad-norm", "0")
    with pytest.raises(EvalsuiteError) as err:
        ppo.train(c, scorer=TokenShare(1000))
    assert "The loss became NaN or infinite at step 1" in str(err.value) and "lower --lr (now 1e+30)" in str(err.value)
    assert not (tmp_path / "ppo").exists()


# --- bad input -----------------------------------------------------------------------------------


def test_a_causal_lm_or_a_multi_label_classifier_is_no_reward_model(tiny_model_dir, tiny_rm_dir, prompts_file,
                                                                     tmp_path):
    with pytest.raises(EvalsuiteError, match="is a causal language model, not a reward model"):
        ppo.train(config(tiny_model_dir, tiny_model_dir, prompts_file, tmp_path / "a"))
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    three = tmp_path / "three-labels"
    config3 = AutoConfig.from_pretrained(tiny_rm_dir, num_labels=3)
    AutoModelForSequenceClassification.from_config(config3).save_pretrained(three, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_rm_dir).save_pretrained(three)
    with pytest.raises(EvalsuiteError, match="with 3 labels, not a reward model"):
        ppo.train(config(tiny_model_dir, three, prompts_file, tmp_path / "b"))


def test_a_reward_model_with_another_tokenizer_is_refused(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path):
    from transformers import AutoTokenizer

    other = tmp_path / "other-rm"
    other.mkdir()
    for f in tiny_rm_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<brand-new-token>"])
    tokenizer.save_pretrained(other)
    with pytest.raises(EvalsuiteError, match="use different tokenizers"):
        ppo.train(config(tiny_model_dir, other, prompts_file, tmp_path / "ppo"))


def test_empty_and_overlong_prompts(tiny_model_dir, tiny_rm_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(EvalsuiteError, match="holds no rows"):
        ppo.train(config(tiny_model_dir, tiny_rm_dir, str(empty), tmp_path / "a"))
    long = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "short"}, {"prompt": "word " * 200}])
    with pytest.raises(EvalsuiteError) as err:
        ppo.train(config(tiny_model_dir, tiny_rm_dir, long, tmp_path / "b"))
    assert "long.jsonl:2: the prompt is" in str(err.value) and "--overlong skip" in str(err.value)
    assert not (tmp_path / "b").exists()


def test_ppo_settings_from_a_toml_table_and_flags(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text('lr = 1e-4\n\n[sft]\nepochs = 3\n\n[ppo]\npolicy = "ckpt/sft"\nreward = "ckpt/rm"\n'
                    'prompts = ["a.jsonl", "b.jsonl"]\nkl-coef = 0.05\nptx_data = "wiki.txt"\n')
    c = resolve(PPOConfig, ["--config", str(path), "--output", "o", "--kl-coef", "0.1"], "p")
    assert (c.model, c.reward, c.data, c.kl_coef, c.lr, c.epochs) == ("ckpt/sft", "ckpt/rm", ["a.jsonl", "b.jsonl"],
                                                                     0.1, 1e-4, 1)
    assert c.uses_ptx and c.ptx_coef == 1.0 and c.to_dict()["ptx_data"] == ["wiki.txt"]
    with pytest.raises(EvalsuiteError, match="PPO has no validation set"):
        resolve(PPOConfig, ["--config", str(path), "--output", "o", "--valid-fraction", "0.1"], "p")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--mini-batch-size", "32"], "is larger than --batch-size"),
    (["--ptx-coef", "-1"], "--ptx-coef must not be negative"),
    (["--grad-accum", "2"], "--grad-accum is not used by PPO"),
    (["--response-length", "64"], "leaves no room for a prompt"),
])
def test_bad_settings_are_one_line(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path, argv, expected):
    with pytest.raises(EvalsuiteError, match=expected):
        config(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path / "ppo", *argv)


def test_the_command_line_trains_two_steps_with_the_reward_model(tiny_model_dir, tiny_rm_dir, prompts_file,
                                                                tmp_path, capsys):
    out = tmp_path / "ppo"
    argv = ["train", "ppo", "--policy", str(tiny_model_dir), "--reward", str(tiny_rm_dir), "--prompts", prompts_file,
            "--output", str(out), "--split", "all", "--max-steps", "2", "--batch-size", "4", "--mini-batch-size", "2",
            "--response-length", "4", "--max-length", "64", "--device", "cpu", "--sample-every", "1"]
    assert evalsuite_main(argv) == 0
    printed = capsys.readouterr()
    assert "ppo: 2 steps, 8 episodes" in printed.out + printed.err and "sample at step 1" in printed.out + printed.err
    log = read_log(out)
    assert len(log) == 2 and log[0]["samples"] and log[0]["beta"] == 0.02
    assert (out / "model.safetensors").is_file() and not (tmp_path / "ppo.training").exists()
    assert evalsuite_main(argv) == 2  # a finished checkpoint is not overwritten
    assert "already holds a trained ppo checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_train_like_one(tiny_model_dir, tiny_rm_dir, prompts_file, tmp_path):
    """DDP on two CPU processes with 4 episodes each ends where one process with 8 does."""
    import os
    import subprocess
    import sys

    common = ["-m", "evalsuite", "train", "ppo", "--policy", str(tiny_model_dir), "--reward", str(tiny_rm_dir),
              "--prompts", prompts_file, "--split", "all", "--max-steps", "3", "--ppo-epochs", "1",
              "--response-length", "4", "--max-length", "64", "--device", "cpu", "--sample-every", "0",
              "--lr", "1e-3"]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run([*launcher, *common, "--batch-size", "4", "--mini-batch-size", "4", "--output",
                    str(tmp_path / "dp")], check=True, capture_output=True, env=env, timeout=600)
    subprocess.run([sys.executable, *common, "--batch-size", "8", "--mini-batch-size", "8", "--output",
                    str(tmp_path / "one")], check=True, capture_output=True, env=env, timeout=600)
    assert read_manifest(tmp_path / "dp")["device"]["processes"] == 2
    dp, one = read_log(tmp_path / "dp"), read_log(tmp_path / "one")
    assert [r["episodes"] for r in dp] == [r["episodes"] for r in one] == [8, 8, 8]
    assert [r["score_mean"] for r in dp] == pytest.approx([r["score_mean"] for r in one], abs=1e-5)
    a, b = policy_weights(tmp_path / "dp"), policy_weights(tmp_path / "one")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
