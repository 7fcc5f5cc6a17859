"""Planning without torch: the data order of every step, row packing, prompt cutting."""

from __future__ import annotations

from evalsuite.trainers.packing import Schedule, Tree, cut_prefix, first_fit, layout, sequences


def test_a_step_covers_the_same_examples_whatever_the_processes():
    one = Schedule(n_examples=10, batch_size=4, grad_accum=1, processes=1, epochs=2, max_steps=0, seed=3)
    two = Schedule(n_examples=10, batch_size=2, grad_accum=1, processes=2, epochs=2, max_steps=0, seed=3)
    accum = Schedule(n_examples=10, batch_size=1, grad_accum=2, processes=2, epochs=2, max_steps=0, seed=3)
    assert one.steps_per_epoch == 3 and one.total_steps == 6
    for step in range(6):
        assert one.step_examples(step) == two.step_examples(step) == accum.step_examples(step)
        parts = [m for rank in range(2) for m in two.micro_batches(step, rank)]
        assert sorted(i for m in parts for i in m) == sorted(one.step_examples(step))
    first, second = one.order(0), one.order(1)
    assert sorted(first) == list(range(10)) and first != second and first == one.order(0)
    assert len(one.step_examples(2)) == 2  # the last step of an epoch is short
    assert accum.micro_batches(2, 1) == [[accum.step_examples(2)[1]], []]  # ... and may leave a process empty
    assert Schedule(10, 4, 1, 1, 2, 0, 3, shuffle=False).order(1) == list(range(10))


def test_max_steps_runs_past_epochs_and_epoch_ends():
    s = Schedule(n_examples=8, batch_size=4, grad_accum=1, processes=1, epochs=1, max_steps=5, seed=0)
    assert s.total_steps == 5 and [s.epoch_of(i) for i in range(5)] == [0, 0, 1, 1, 2]
    assert [s.ends_epoch(i) for i in range(5)] == [False, True, False, True, False]


def test_first_fit_decreasing():
    assert first_fit([5, 3, 4, 2], 7) == [[0, 3], [2, 1]]
    assert first_fit([9, 1], 4) == [[0], [1]]  # wider than a row: a row of its own


def test_layout_restarts_positions_per_tree_and_branches_continue_their_prefix():
    row = layout([Tree((1, 2), ((3, 4), (5,))), Tree((), ((6, 7, 8),))])
    assert row.tokens == [1, 2, 3, 4, 5, 6, 7, 8]
    assert row.positions == [0, 1, 2, 3, 2, 0, 1, 2]
    assert row.group == [0, 0, 0, 0, 0, 1, 1, 1]
    assert row.segment == [0, 0, 1, 1, 2, 1, 1, 1]
    assert row.branch_spans == [[(2, 2), (4, 1)], [(5, 3)]]
    assert sequences(Tree((1, 2), ((3, 4), (5,)))) == [(1, 2, 3, 4), (1, 2, 5)]
    assert Tree((1, 2), ((3, 4), (5,))).size == 5


def test_cut_prefix_keeps_the_end_of_the_prompt():
    assert cut_prefix((1, 2, 3, 4), [(5, 6), (7,)], 4) == (3, 4)
    assert cut_prefix((1, 2), [(5,)], 10) == (1, 2)
    assert cut_prefix((1, 2), [(5, 6, 7, 8)], 4) is None  # the response leaves no room for any prompt
    assert cut_prefix((), [(5, 6)], 2) == ()


def test_padded_rows_group_similar_lengths_in_a_batch():
    lengths = [1, 50, 2, 40, 3, 30, 4, 20]
    s = Schedule(n_examples=8, batch_size=2, grad_accum=1, processes=1, epochs=1, max_steps=0, seed=0, lengths=lengths)
    order = s.order(0)
    assert sorted(order) == list(range(8)) and [lengths[i] for i in order] == sorted(lengths, reverse=True)
    assert [lengths[i] for i in s.step_examples(0)] == [50, 40]
