"""CPU weight layout: same values, out of the checkpoint's memory map."""

import torch


def test_cpu_weights_leave_the_checkpoint_map_with_the_same_values(tiny_model_dir):
    """Weights are copied out of the safetensors memory map (whose pages are handed back), linear
    ones transposed in memory; the model computes what the freshly loaded one does."""
    from transformers import AutoModelForCausalLM

    from evalsuite.models.cpu_weights import _checkpoint_mappings, prepare_cpu_weights

    reference, model = (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, use_safetensors=True).eval()
        for _ in range(2)
    )
    mapped = _checkpoint_mappings()

    def in_map(tensors) -> bool:
        return any(lo <= t.data_ptr() < hi for t in tensors for lo, hi in mapped)

    assert in_map(model.parameters())  # loaded weights do live in the map
    prepare_cpu_weights(model)
    assert not in_map([*model.parameters(), *model.buffers()])
    q = model.model.layers[0].self_attn.q_proj.weight
    assert q.stride() == (1, q.shape[0])  # (out, in) shape over an (in, out) contiguous matrix
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied, one tensor
    ids = torch.tensor([[1, 5, 9, 200, 33, 7]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-5)
