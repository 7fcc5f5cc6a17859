"""Key/value-cache surgery shared by scoring and generation: select rows, cut positions, stack.

Every function returns a new ``DynamicCache`` (or changes the one given, where its name says so)
and works on any model whose cache has ``layers`` with ``keys``/``values`` of shape
(batch, heads, positions, head size).
"""

from __future__ import annotations

import torch


def select_rows(cache, rows: torch.Tensor):
    """A new cache holding the given batch rows (repeats allowed) of ``cache``."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys.index_select(0, rows), layer.values.index_select(0, rows))
                         for layer in cache.layers])


def slice_positions(cache, length: int):
    """A new cache holding the first ``length`` positions of ``cache``."""
    from transformers import DynamicCache

    return DynamicCache([(layer.keys[:, :, :length], layer.values[:, :, :length]) for layer in cache.layers])


def drop_leading_positions(cache, first: int) -> None:
    """Cut the first ``first`` positions of every layer, in place (columns no row attends to)."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


def left_pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(mask, (width - mask.shape[1], 0))


def stack_caches(a, b, width: int):
    """The rows of cache ``a`` then those of ``b``, right-aligned in ``width`` positions (the left
    padding is masked out). One new tensor per layer: no padded intermediate copies."""
    from transformers import DynamicCache

    layers = []
    for x, y in zip(a.layers, b.layers):
        pair = []
        for u, v in ((x.keys, y.keys), (x.values, y.values)):
            out = u.new_zeros(u.shape[0] + v.shape[0], u.shape[1], width, u.shape[3])
            out[: u.shape[0], :, width - u.shape[2] :] = u
            out[u.shape[0] :, :, width - v.shape[2] :] = v
            pair.append(out)
        x.keys = x.values = y.keys = y.values = None  # free each layer's old rows as soon as copied
        layers.append(tuple(pair))
    return DynamicCache(layers)
