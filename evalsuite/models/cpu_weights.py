"""Weights of a model that runs on the CPU: copied out of the checkpoint's memory map, laid out for
fast small matrix products.

``from_pretrained`` leaves every weight inside a memory map of the safetensors file, and the pages
read count toward the process's memory. We copy each weight once into the process's own memory
(linear weights transposed, see ``prepare_cpu_weights``) and hand its mapped pages back to the
kernel right after, so that the model occupies its size once, not twice, at every moment.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import sys

import torch

MADV_DONTNEED = 4  # Linux: drop these pages from the process; a file-backed page is re-read if used


def prepare_cpu_weights(model: torch.nn.Module) -> None:
    """Give every parameter and buffer its own memory, each linear weight as the transpose of a
    contiguous (in, out) matrix.

    Values and shapes are unchanged; only the memory layout is. On a CPU, torch sends
    ``linear(x, W)`` with a small batch of rows (decoding 16 sequences: 16 rows) to a slow GEMM
    kernel when W is laid out (out, in); with the transposed layout the same call takes a kernel
    about four times faster, and large batches run at the same speed either way. A tied weight (an
    output layer that is the input embedding) is one tensor and is copied once.
    """
    linear = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    mapped = _checkpoint_mappings()
    for tensor in [*model.parameters(), *model.buffers()]:  # each once, tied ones included
        old = tensor.data
        if id(tensor) in linear and old.dim() == 2:
            tensor.data = old.t().contiguous().t()
        elif mapped:
            tensor.data = old.clone()
        else:
            continue
        _release_pages(old, mapped)


def _checkpoint_mappings() -> list[tuple[int, int]]:
    """Address ranges where safetensors files are memory-mapped into this process (Linux only)."""
    if not sys.platform.startswith("linux"):
        return []
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[-1].endswith(".safetensors"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def _release_pages(old: torch.Tensor, mapped: list[tuple[int, int]]) -> None:
    """Hand back the whole pages of a copied weight, when they lie in a checkpoint's memory map.

    Only file-backed pages are released: should anything still read them, the kernel reads them
    from the file again, so no value can change. Memory of our own is left to the allocator."""
    storage = old.untyped_storage()
    start, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    last = end // mmap.PAGESIZE * mmap.PAGESIZE
    if last <= first or not any(lo <= first and last <= hi for lo, hi in mapped):
        return
    _libc().madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), MADV_DONTNEED)


@functools.cache
def _libc():
    return ctypes.CDLL(None, use_errno=True)
