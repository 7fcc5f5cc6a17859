"""The planner decides which tokens each pass computes; these cases are worked out by hand."""

from evalsuite.models.shared_prefix import TokenRequest, common_prefix_len, plan_batches, plan_families


def test_common_prefix_len():
    assert common_prefix_len((1, 2, 3), (1, 2, 4)) == 2
    assert common_prefix_len((1, 2), (1, 2, 3)) == 2
    assert common_prefix_len((), (1,)) == 0


def test_choices_of_one_question_form_one_family_and_questions_stay_apart():
    primer = (7, 7, 7, 7)
    q1 = primer + (10, 11)  # context of question 1 (6 tokens)
    q2 = primer + (20, 21)
    reqs = [
        TokenRequest(q1 + (1, 2), 6),
        TokenRequest(q1 + (1, 3), 6),
        TokenRequest(q2 + (5,), 6),
        TokenRequest(q2 + (6, 6), 6),
    ]
    families = plan_families(reqs)
    assert sorted(sorted(f.members) for f in families) == [[0, 1], [2, 3]]
    fam1 = next(f for f in families if 0 in f.members)
    assert fam1.b_end == 7  # context plus the shared first answer token
    fam2 = next(f for f in families if 2 in f.members)
    assert fam2.b_end == 6  # the two answers differ at their first token
    (batch,) = plan_batches(reqs, batch_size=8)
    assert batch.a_end == 4  # the primer is computed once for the whole batch


def test_sentence_pairs_share_their_common_start():
    more = (1, 50, 51, 52, 60, 61)
    less = (1, 50, 51, 52, 70, 61)
    other = (1, 90, 91, 92, 93, 94)
    families = plan_families([TokenRequest(more, 1), TokenRequest(less, 1), TokenRequest(other, 1)])
    assert sorted(sorted(f.members) for f in families) == [[0, 1], [2]]


def test_a_pass_leaves_every_family_a_token_of_its_own():
    # Both requests are the same single-member shape: A may not swallow all of B.
    reqs = [TokenRequest((1, 2, 3), 1), TokenRequest((1, 2, 4), 1)]
    for batch in plan_batches(reqs, batch_size=1):
        for fam in batch.families:
            assert fam.b_end - batch.a_end >= 1


def test_batches_respect_batch_size():
    reqs = [TokenRequest((i, i + 1, i + 2), 1) for i in range(10)]
    batches = plan_batches(reqs, batch_size=3)
    assert all(len(b.families) <= 3 for b in batches)
    assert sorted(m for b in batches for f in b.families for m in f.members) == list(range(10))


def test_questions_about_one_passage_share_a_batch_and_its_prefix():
    passage_a = tuple(range(100, 130))  # 30 tokens
    passage_b = tuple(range(200, 230))
    reqs = [TokenRequest(p + (q, q + 1, 7), 32) for p in (passage_a, passage_b) for q in (1, 3, 5)]
    batches = plan_batches(reqs, batch_size=16)
    assert len(batches) == 2  # one per passage, although all six would fit in one batch
    for batch in batches:
        assert batch.a_end == 30  # each passage is computed once
        assert len(batch.families) == 3


def test_unrelated_sequences_are_batched_longest_first():
    reqs = [TokenRequest(tuple([i] * n), 1) for i, n in enumerate([3, 9, 5, 7], start=1)]
    (batch,) = plan_batches(reqs, batch_size=8)
    lengths = [len(reqs[f.members[0]].seq) for f in batch.families]
    assert lengths == sorted(lengths, reverse=True)


# ---- the prefix tree used for scoring ----------------------------------------------------------

import random  # noqa: E402

from evalsuite.models.shared_prefix import PASS_OVERHEAD, length_chunks, plan_tree_batches  # noqa: E402


def _covered(batch, member):
    """Token positions fed on the path of ``member`` (union over the nodes that list it)."""
    spans = [(n.start, n.end) for level in batch.levels for n in level if member in n.members]
    return spans


def test_tree_shares_primer_question_and_common_answer_start():
    primer = tuple(range(1000, 1200))  # 200 tokens: far more than a pass costs
    q1 = primer + tuple(range(10, 40))  # a 30-token question
    reqs = [
        TokenRequest(q1 + (9,) * 30 + (1,), 230),
        TokenRequest(q1 + (9,) * 30 + (2,), 230),
        TokenRequest(q1 + (7,), 230),
        TokenRequest(primer + (6,) * 30 + (8,), 230),
    ]
    (batch,) = plan_tree_batches(reqs, batch_size=4)
    root = batch.levels[0]
    assert len(root) == 1 and (root[0].start, root[0].end) == (0, 200)  # the primer, once
    shared_answer = [n for level in batch.levels for n in level if sorted(n.members) == [0, 1]]
    assert shared_answer and shared_answer[0].end == 260  # q1 and the common answer start, once for both


def test_sequences_that_share_little_run_whole_in_one_level():
    reqs = [TokenRequest((1, 2, 3, 4, 5) + (k,) * 6, 1) for k in range(10, 16)]  # 5 shared tokens of 11
    (batch,) = plan_tree_batches(reqs, batch_size=8)
    assert len(batch.levels) == 1 and all(n.start == 0 for n in batch.levels[0])


def test_every_position_a_request_needs_is_fed_exactly_once_on_its_path():
    rng = random.Random(0)
    base = [rng.randrange(5) for _ in range(12)]
    reqs = []
    for _ in range(60):
        cut = rng.randrange(1, 12)
        seq = tuple(base[:cut] + [rng.randrange(5) for _ in range(rng.randrange(1, 8))])
        reqs.append(TokenRequest(seq, rng.randrange(1, len(seq))))
    seen = set()
    for batch in plan_tree_batches(reqs, batch_size=4):
        for node in batch.levels[0]:
            for m in node.members:
                seen.add(m)
                positions = sorted(p for start, end in _covered(batch, m) for p in range(start, end))
                # every input it needs is fed, none twice (a request that is a prefix of another may
                # sit in a node that feeds further, for the other's sake)
                assert len(set(positions)) == len(positions)
                assert positions[: reqs[m].feed_end] == list(range(reqs[m].feed_end)), m
        for depth, level in enumerate(batch.levels[1:], start=1):
            for node in level:
                parent = batch.levels[depth - 1][node.parent]
                assert parent.end == node.start and set(node.members) <= set(parent.members)
    assert seen == set(range(len(reqs)))


def test_length_chunks_pay_for_padding_only_when_a_pass_costs_more():
    # Four 1-token rows and one 30-token row: together 5*30 + overhead, apart 4*1 + 30 + 2*overhead.
    chunks = length_chunks([1, 1, 30, 1, 1], max_rows=8)
    assert sorted(map(sorted, chunks)) == [[0, 1, 3, 4], [2]]
    assert 4 * 1 + 30 + 2 * PASS_OVERHEAD < 5 * 30 + PASS_OVERHEAD
    assert all(len(c) <= 2 for c in length_chunks([3] * 7, max_rows=2))


# ---- prefix trees packed into rows (short sequences) --------------------------------------------

from evalsuite.models.shared_prefix import plan_packed  # noqa: E402


def _path(row, member):
    """Spans fed on ``member``'s path in a packed row, checking that each node's parent precedes it."""
    spans = []
    for i, node in enumerate(row.nodes):
        assert node.parent < i
        if member in node.members:
            if node.parent >= 0:
                parent = row.nodes[node.parent]
                assert parent.end == node.start and set(node.members) <= set(parent.members)
            spans.append((node.start, node.end))
    return spans


def test_packed_rows_feed_every_needed_position_once_and_fit_the_row():
    rng = random.Random(1)
    reqs = []
    for _ in range(300):
        stem = [rng.randrange(3) for _ in range(rng.randrange(1, 10))]
        seq = tuple([7] + stem + [rng.randrange(50) for _ in range(rng.randrange(1, 30))])
        reqs.append(TokenRequest(seq, rng.randrange(1, len(seq))))
    passes, rest = plan_packed(reqs, batch_size=4, row_tokens=64)
    assert rest == []
    seen = set()
    for rows in passes:
        assert len(rows) <= 4
        for row in rows:
            assert row.size <= 64
            for m in {m for node in row.nodes for m in node.members}:
                assert m not in seen  # each request lives in one row
                seen.add(m)
                positions = sorted(p for start, end in _path(row, m) for p in range(start, end))
                assert len(set(positions)) == len(positions)
                assert positions[: reqs[m].feed_end] == list(range(reqs[m].feed_end)), m
    assert seen == set(range(len(reqs)))
    total = sum(row.size for rows in passes for row in rows)
    assert total < sum(r.feed_end for r in reqs)  # shared starts were fed once


def test_pairs_that_share_a_start_feed_it_once():
    start = (1, 2, 3, 4, 5, 6)
    reqs = [TokenRequest(start + (10, 11, 12), 1), TokenRequest(start + (20, 21), 1)]
    ((row,),), rest = plan_packed(reqs, batch_size=8)
    assert rest == [] and row.size == 6 + 2 + 1  # the shared start, then each one's own tokens


def test_long_sequences_and_primer_groups_are_left_to_the_cached_tree():
    primer = tuple(range(100, 140))  # 40 shared tokens: better computed once and remembered
    questions = [TokenRequest(primer + (k,) * 20 + (1,), 41) for k in range(20)]  # ~20 * 21 + 40 tokens
    long_one = TokenRequest(tuple(range(1000, 1400)), 1)
    short = TokenRequest((5, 6, 7), 1)
    reqs = questions + [long_one, short]
    passes, rest = plan_packed(reqs, batch_size=8, row_tokens=256)
    assert sorted(rest) == list(range(21))
    assert [m for rows in passes for row in rows for n in row.nodes for m in n.members] == [21]
