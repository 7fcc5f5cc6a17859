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


MIN_SHARED = 16  # tokens of common prefix worth a batch of its own (a primer, a passage)


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


def _prefix_groups(families: list[Family], requests: list[TokenRequest]) -> list[list[Family]]:
    """Runs of neighbouring families (in sorted order) that share a long prefix: the questions
    about one passage, or every question after a few-shot primer."""
    groups: list[list[Family]] = []
    for fam in families:
        first = requests[fam.members[0]].seq
        if groups and common_prefix_len(requests[groups[-1][0].members[0]].seq, first) >= MIN_SHARED:
            groups[-1].append(fam)
        else:
            groups.append([fam])
    return groups


def plan_batches(requests: list[TokenRequest], batch_size: int, split_on_prefix: bool = True) -> list[Batch]:
    """Group families into batches of at most ``batch_size`` rows in pass B and (roughly) pass C.

    Families that share a long prefix stay together (so pass A runs that prefix once) and, with
    ``split_on_prefix``, a batch never mixes such a group with others. Within and across groups,
    longest first: similar lengths share a batch (little padding) and out-of-memory shows early.
    """
    length = lambda f: max(len(requests[i].seq) for i in f.members)  # noqa: E731
    groups = [sorted(g, key=length, reverse=True) for g in _prefix_groups(plan_families(requests), requests)]
    groups.sort(key=lambda g: -length(g[0]))
    batches: list[Batch] = []
    current: list[Family] = []
    current_is_group = False  # does the open batch hold a shared-prefix group?
    rows = 0
    for group in groups:
        if split_on_prefix and current and (len(group) > 1 or current_is_group):
            batches.append(_close(current, requests))
            current, rows = [], 0
        current_is_group = len(group) > 1
        for fam in group:
            if current and (len(current) >= batch_size or rows + len(fam.members) > batch_size):
                batches.append(_close(current, requests))
                current, rows = [], 0
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
