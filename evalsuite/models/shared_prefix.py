"""Plan how to run many token sequences while computing each shared prefix only once.

Multiple-choice tasks score several continuations of one context (TruthfulQA's six-question primer
and question are shared by every answer), paired tasks score sentences that differ in one word
(CrowS-Pairs, Winogender's gender variants), and reading tasks ask several questions about one
passage. Running each sequence whole repeats most of the work. We sort the sequences so that
those sharing a prefix are neighbours, and plan:

* for scoring short sequences (``plan_packed``): whole prefix trees laid side by side in rows,
  run in one pass under a tree-attention mask.
* for scoring the rest (``plan_tree_batches``): a prefix tree per batch. Each shared segment is one
  row, run once on top of its parent's key/value cache; the tree runs level by level.
* for generation prefill (``plan_batches``): three passes, because every prompt must end in one
  cache row to decode from: A, the prefix common to the batch; B, each *family*'s shared part
  (prompts about one passage); C, each prompt's own tail.

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


# --- scoring: a prefix tree per batch ------------------------------------------------------------
#
# For scoring, sharing goes deeper than three levels: the TruthfulQA primer, then a question, then
# answers that start alike; or the three gender versions of a Winogender sentence, which share
# everything up to the pronoun. Each batch becomes a prefix tree whose shared segments are
# computed once; the tree is run level by level, each level's rows on top of their parents' cache.

MIN_SEGMENT = 4  # a shared run shorter than this is not worth a row of its own: its children feed it
# Requests planned together per unit of batch size: a tree over more requests has fewer, fuller
# passes (each forward pass has a fixed cost); 4 minimised the planned cost on our benchmark tasks.
REQUESTS_PER_BATCH = 4


@dataclass
class Node:
    start: int  # this row feeds tokens [start, end) of its members' (shared) sequence
    end: int
    parent: int  # row of the parent node in the previous level; -1 at the top
    members: list[int]  # every request below this node: each gathers its log-probs along its path
    tokens: tuple[int, ...] = ()  # the tokens it feeds, seq[start:end]


@dataclass
class TreeBatch:
    levels: list[list[Node]]


def _split(reqs: list[TokenRequest], members: list[int], depth: int, fed: int, parent: int, level: int,
           levels: list[list[Node]], min_segment: int = MIN_SEGMENT) -> None:
    """Members (sorted) share ``seq[:depth]``; ancestors' rows have fed ``[0, fed)``."""
    if len(members) == 1:
        (m,) = members
        if reqs[m].feed_end > fed:
            _add(levels, level, _node(reqs, fed, reqs[m].feed_end, parent, members))
        return
    first, last = reqs[members[0]].seq, reqs[members[-1]].seq  # sorted: the extremes bound the LCP
    end = min(common_prefix_len(first, last), max(reqs[m].feed_end for m in members))
    if end - fed >= min_segment or (parent == -1 and end > fed):
        parent, level, fed = _add(levels, level, _node(reqs, fed, end, parent, list(members))), level + 1, end
    done = [m for m in members if reqs[m].feed_end <= end]
    if fed < end:  # no row was made for [fed, end): members that end inside it need their own
        for m in done:
            _add(levels, level, _node(reqs, fed, reqs[m].feed_end, parent, [m]))
    rest = [m for m in members if reqs[m].feed_end > end]
    start = 0
    while start < len(rest):  # runs with the same next token share seq[:end + 1]
        stop = start + 1
        while stop < len(rest) and reqs[rest[stop]].seq[end] == reqs[rest[start]].seq[end]:
            stop += 1
        _split(reqs, rest[start:stop], end + 1, fed, parent, level, levels, min_segment)
        start = stop


def _node(reqs: list[TokenRequest], start: int, end: int, parent: int, members: list[int]) -> Node:
    return Node(start, end, parent, members, reqs[members[0]].seq[start:end])


def _add(levels: list[list[Node]], level: int, node: Node) -> int:
    while len(levels) <= level:
        levels.append([])
    levels[level].append(node)
    return len(levels[level]) - 1


def plan_tree_batches(requests: list[TokenRequest], batch_size: int) -> list[TreeBatch]:
    """Batches of requests that share prefixes, longest first.

    A batch plans ``REQUESTS_PER_BATCH * batch_size`` requests so that its shared nodes fill
    passes of useful size; the executor still runs leaves at most ``batch_size`` rows at a time.
    """
    batch_size = REQUESTS_PER_BATCH * batch_size
    clusters = _clusters(requests, range(len(requests)))
    pieces = [c[i : i + batch_size] for c in clusters for i in range(0, len(c), batch_size)]
    pieces.sort(key=lambda p: -max(len(requests[i].seq) for i in p))  # similar lengths: little padding
    batches: list[TreeBatch] = []
    current: list[int] = []
    for piece in pieces:
        if current and len(current) + len(piece) > batch_size:
            batches.append(_tree(requests, current, batch_size // REQUESTS_PER_BATCH))
            current = []
        current += piece
    if current:
        batches.append(_tree(requests, current, batch_size // REQUESTS_PER_BATCH))
    return batches


def _clusters(requests: list[TokenRequest], indices) -> list[list[int]]:
    """Runs of sorted neighbours that share at least MIN_SEGMENT tokens."""
    order = sorted(indices, key=lambda i: requests[i].seq)
    clusters: list[list[int]] = []
    for prev, idx in zip([None] + order[:-1], order):
        if prev is not None and common_prefix_len(requests[prev].seq, requests[idx].seq) >= MIN_SEGMENT:
            clusters[-1].append(idx)
        else:
            clusters.append([idx])
    return clusters


def _tree(requests: list[TokenRequest], members: list[int], batch_size: int) -> TreeBatch:
    """The batch's prefix tree, unless running every sequence whole is cheaper (little is shared)."""
    levels: list[list[Node]] = []
    _split(requests, sorted(members, key=lambda i: requests[i].seq), 0, 0, -1, 0, levels)
    flat = [[_node(requests, 0, requests[m].feed_end, -1, [m]) for m in members]]
    return min(TreeBatch(levels), TreeBatch(flat), key=lambda b: planned_cost(b, batch_size))


def planned_cost(batch: TreeBatch, batch_size: int) -> float:
    """Padded tokens plus a fixed cost per forward pass, as the executor will run the batch."""
    cost = 0.0
    for depth, nodes in enumerate(batch.levels):
        parents = {n.parent for n in batch.levels[depth + 1]} if depth + 1 < len(batch.levels) else set()
        inner = [n.end - n.start for i, n in enumerate(nodes) if i in parents]
        if inner:
            cost += max(inner) * len(inner) + PASS_OVERHEAD
        leaves = [n.end - n.start for i, n in enumerate(nodes) if i not in parents]
        for chunk in length_chunks(leaves, batch_size):
            cost += max(leaves[i] for i in chunk) * len(chunk) + PASS_OVERHEAD
    return cost


# The fixed cost of one more forward pass in tokens' worth of compute: every pass streams all the
# weights once, which for a small model on a CPU costs about as much as 40 tokens of compute.
PASS_OVERHEAD = 40


def length_chunks(lengths: list[int], max_rows: int) -> list[list[int]]:
    """Split rows into chunks that minimise padded tokens plus a per-pass overhead.

    Rows are taken shortest first; the best cut points come from a small dynamic programme, so a
    few long rows no longer make every short row in their pass pay for their length.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j rows (in sorted order)
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - max_rows), j):
            cost = best[i] + (j - i) * lengths[order[j - 1]] + PASS_OVERHEAD
            if cost < best[j]:
                best[j], cut[j] = cost, i
    chunks = []
    j = n
    while j > 0:
        chunks.append(order[cut[j] : j])
        j = cut[j]
    return chunks[::-1]


# --- scoring short sequences: prefix trees packed side by side in rows ---------------------------
#
# Short sequences (sentence pairs, Winogender's variants) waste most of a level-by-level tree on
# padding and on passes too small to fill the machine. Instead, a whole prefix tree is laid out in
# one row, parents before children, and an attention mask lets each token see only its own node's
# earlier tokens and its ancestors' tokens ("tree attention"); position ids restart for each branch.
# Several trees share a row the same way, so a pass is one full block of tokens with no padding
# but the end of a row, and every shared token is still computed once.

PACK_ROW = 128  # tokens per packed row: every token attends over its whole row, so rows stay short


@dataclass
class PackedRow:
    nodes: list[Node]  # parents come first; ``parent`` is the index of the parent node in this row

    @property
    def size(self) -> int:
        return sum(n.end - n.start for n in self.nodes)


def plan_packed(requests: list[TokenRequest], batch_size: int, row_tokens: int = PACK_ROW):
    """Split requests into passes of packed rows (at most ``batch_size`` rows each) and the rest.

    The rest (sequences longer than a row, or groups around a long common prefix such as a few-shot
    primer, which is better computed once and remembered across batches) is returned as a list of
    request indices for ``plan_tree_batches``.
    """
    pieces, rest = [], []
    for cluster in _clusters(requests, range(len(requests))):
        seqs = [requests[i] for i in cluster]
        root = common_prefix_len(seqs[0].seq, seqs[-1].seq) if len(seqs) > 1 else 0
        if max(r.feed_end for r in seqs) > row_tokens or (root >= MIN_SHARED and _trie_bound(seqs) > row_tokens):
            rest += cluster
            continue
        piece: list[int] = []
        for i in cluster:  # cut the cluster where its tree would overflow a row
            if piece and _trie_bound([requests[j] for j in piece + [i]]) > row_tokens:
                pieces.append(piece)
                piece = []
            piece.append(i)
        pieces.append(piece)
    trees = [_packed_nodes(requests, piece) for piece in pieces]
    rows: list[PackedRow] = []
    for nodes in sorted(trees, key=lambda t: -sum(n.end - n.start for n in t)):  # first fit, largest first
        size = sum(n.end - n.start for n in nodes)
        row = next((r for r in rows if r.size + size <= row_tokens), None)
        if row is None:
            row = PackedRow([])
            rows.append(row)
        offset = len(row.nodes)
        row.nodes += [Node(n.start, n.end, n.parent + offset if n.parent >= 0 else -1, n.members, n.tokens)
                      for n in nodes]
    rows.sort(key=lambda r: -r.size)
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)], rest


def _trie_bound(seqs: list[TokenRequest]) -> int:
    """An upper bound on the tokens a tree over these sorted sequences feeds."""
    total = seqs[0].feed_end
    for a, b in zip(seqs, seqs[1:]):
        total += b.feed_end - min(common_prefix_len(a.seq, b.seq), a.feed_end, b.feed_end)
    return total


def _packed_nodes(requests: list[TokenRequest], members: list[int]) -> list[Node]:
    """The prefix tree of ``members`` as one list, parents first; a shared token of any length is a node."""
    levels: list[list[Node]] = []
    _split(requests, sorted(members, key=lambda i: requests[i].seq), 0, 0, -1, 0, levels, min_segment=1)
    nodes, offset = [], 0
    for depth, level in enumerate(levels):
        above = offset - len(levels[depth - 1]) if depth else 0
        nodes += [Node(n.start, n.end, n.parent + above if depth else -1, n.members, n.tokens) for n in level]
        offset += len(level)
    return nodes
