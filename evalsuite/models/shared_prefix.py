"""Plan how to score many token sequences while computing each shared prefix only once.

Multiple-choice tasks score several continuations of one context (TruthfulQA's six-question primer
and question are shared by every answer), and paired tasks score sentences that differ in one
word (CrowS-Pairs). Running each sequence whole repeats most of the work. We instead sort the
sequences, cut them into *families* that share a long prefix, and run three passes per batch:

  A. the prefix common to the whole batch (e.g. the primer), once, batch size 1;
  B. each family's own shared part, with A's key/value cache;
  C. each member's tail, with its family's cache from B.

This module is pure planning (no torch), so the arithmetic of who-runs-what is easy to test.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenRequest:
    """Score tokens ``seq[ctx_len:]`` given ``seq[:ctx_len]`` (ctx_len >= 1)."""

    seq: tuple[int, ...]
    ctx_len: int

    @property
    def feed_end(self) -> int:
        # The last token is only ever a target, never an input.
        return len(self.seq) - 1


@dataclass
class Family:
    members: list[int]  # indices into the request list
    b_end: int  # tokens [0, b_end) are shared by every member and fed once for the family


@dataclass
class Batch:
    families: list[Family]
    a_end: int  # tokens [0, a_end) are shared by the whole batch and fed once


def common_prefix_len(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _same_family(a: TokenRequest, b: TokenRequest, shared: int) -> bool:
    # Share a family only when the shared part covers both contexts (so different questions stay
    # apart even though they share a primer; batch-level pass A handles the primer) or, for
    # context-free sequences such as sentence pairs, at least half of the shorter one.
    need = max(a.ctx_len, b.ctx_len, (min(len(a.seq), len(b.seq)) + 1) // 2)
    return shared >= need


def plan_families(requests: list[TokenRequest]) -> list[Family]:
    order = sorted(range(len(requests)), key=lambda i: requests[i].seq)
    families: list[Family] = []
    for prev, idx in zip([None] + order[:-1], order):
        req = requests[idx]
        if prev is not None:
            shared = common_prefix_len(requests[prev].seq, req.seq)
            if _same_family(requests[prev], req, shared):
                fam = families[-1]
                fam.members.append(idx)
                fam.b_end = min(fam.b_end, shared)
                continue
        # Sorted order puts a prefix before its extensions, so the first member's inputs bound b_end.
        families.append(Family(members=[idx], b_end=req.feed_end))
    return families


def plan_batches(requests: list[TokenRequest], batch_size: int, split_on_prefix: bool = True) -> list[Batch]:
    """Group families into batches of at most ``batch_size`` rows in pass B and (roughly) pass C.

    Families come in sorted order, so those sharing a prefix (questions about one passage) are
    neighbours; with ``split_on_prefix`` a batch also ends where the prefix it shares would drop
    to under half, so that prefix runs once in pass A instead of once per family.
    """
    families = plan_families(requests)  # in sorted order of their first member
    batches: list[Batch] = []
    current: list[Family] = []
    rows = 0
    shared = 0
    for fam in families:
        first = requests[fam.members[0]].seq
        with_fam = common_prefix_len(requests[current[0].members[0]].seq, first) if current else len(first)
        full = current and (len(current) >= batch_size or rows + len(fam.members) > batch_size)
        if full or (split_on_prefix and current and shared >= 16 and with_fam < shared // 2):
            batches.append(_close(current, requests))
            current, rows, with_fam = [], 0, len(first)
        shared = min(shared, with_fam) if current else with_fam
        current.append(fam)
        rows += len(fam.members)
    if current:
        batches.append(_close(current, requests))
    return batches


def _close(families: list[Family], requests: list[TokenRequest]) -> Batch:
    first = requests[families[0].members[0]].seq
    shared = min(common_prefix_len(first, requests[f.members[0]].seq) for f in families)
    # Leave every family at least one token of its own in pass B, so no row of B is all padding.
    a_end = max(0, min([shared] + [f.b_end - 1 for f in families]))
    return Batch(families=families, a_end=a_end)
