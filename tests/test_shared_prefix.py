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
