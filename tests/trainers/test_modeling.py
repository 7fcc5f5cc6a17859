"""Getting a model ready to train: frozen layers, residual dropout, the reward model's pieces."""

from __future__ import annotations

import pytest
import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.models.loading import load_tokenizer, load_weights
from evalsuite.trainers import modeling


@pytest.fixture
def model(tiny_model_dir):
    return load_weights(str(tiny_model_dir), "causal", torch.float32)


def test_train_top_layers_freezes_the_rest(model):
    reward = modeling.reward_model_from(model, pad_id=0)
    modeling.train_top_layers(reward, 1, reward.score)
    trainable = {n for n, p in reward.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm", "score")) for n in trainable)
    assert "score.weight" in trainable and "model.norm.weight" in trainable
    ids = torch.tensor([[5, 6, 7]])
    reward(input_ids=ids).logits.sum().backward()
    assert reward.model.layers[0].mlp.up_proj.weight.grad is None  # no graph below the trained layers
    assert reward.model.layers[1].mlp.up_proj.weight.grad is not None
    with pytest.raises(EvalsuiteError, match="more than the model's 2 layers"):
        modeling.train_top_layers(reward, 3, reward.score)


def test_a_head_tied_to_the_embeddings_stays_frozen(model):
    modeling.train_top_layers(model, 1, model.get_output_embeddings())
    assert not model.get_output_embeddings().weight.requires_grad
    assert all(p.requires_grad for p in model.model.layers[1].parameters())


def test_residual_dropout_acts_in_training_only(tiny_model_dir, model):
    plain = load_weights(str(tiny_model_dir), "causal", torch.float32).eval()
    assert modeling.add_residual_dropout(model, 0.5) == 4  # attention and MLP of both layers
    ids = torch.tensor([[5, 6, 7, 8]])
    model.train()
    torch.manual_seed(1)
    first = model(input_ids=ids).logits
    second = model(input_ids=ids).logits
    assert not torch.allclose(first, second)
    model.eval()
    assert torch.allclose(model(input_ids=ids).logits, plain(input_ids=ids).logits)
    assert modeling.add_residual_dropout(plain, 0.0) == 0


def test_reward_pad_token_is_never_eos(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    assert tokenizer.pad_token in (None, tokenizer.eos_token)  # SmolLM2 pads with its EOS
    assert modeling.reward_pad_token(tokenizer) == ("<|endoftext|>", 0)


def test_reward_model_keeps_the_backbone_and_adds_one_score(model):
    torch.manual_seed(0)
    reward = modeling.reward_model_from(model, pad_id=0)
    assert reward.config.num_labels == 1 and reward.config.pad_token_id == 0
    assert reward.score.weight.shape == (1, model.config.hidden_size)
    for (name, p), q in zip(model.model.state_dict().items(), reward.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_packing_needs_a_mask_taking_attention(model):
    assert modeling.use_packing(model, "auto") and not modeling.use_packing(model, "off")
    model.config._attn_implementation = "flash_attention_2"
    assert not modeling.use_packing(model, "auto")
    with pytest.raises(EvalsuiteError, match="--packing on needs sdpa or eager"):
        modeling.use_packing(model, "on")
