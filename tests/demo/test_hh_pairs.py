"""demo/hh_pairs.py on the real HH-RLHF data: the human verdicts, compared through ``labels:``, make the
chosen replies win every pair although the labels file shows them first only about half the time
(matching is by text), and a judge scored against the same labels agrees with them exactly."""

from __future__ import annotations

import json

from evalsuite.cli import main
from evalsuite.results import load_compare
from tests.conftest import HH_PAIRS as N


def test_human_labels_make_the_chosen_replies_win_every_pair(hh_pairs, data_dir, tmp_path):
    hh = hh_pairs
    labels = json.loads((hh / "labels.json").read_text())
    chosen = [json.loads(line) for line in (hh / "chosen.jsonl").read_text().splitlines()]
    assert len(labels) == len(chosen) == N
    assert len({row["prompt"] for row in chosen}) == N  # one comparison per dialogue
    shown_first = sum(label["preference"] == 1 for label in labels)
    assert 0 < shown_first < N  # both positions occur, so position cannot be what matches them

    out = tmp_path / "cmp"
    code = main(["compare", "--prompts", "hh_rlhf", "--limit", str(N), "--model", str(hh / "chosen.jsonl"),
                 "--baseline", str(hh / "rejected.jsonl"), "--judge", f"labels:{hh / 'labels.json'}",
                 "--agreement-with", str(hh / "labels.json"), "--data-dir", str(data_dir),
                 "--cache", str(tmp_path / "c.sqlite"), "--output", str(out)])
    assert code == 0
    record = load_compare(out)
    m = record.models["chosen"]
    assert (m.n, m.wins, m.ties, m.losses) == (N, N, 0, 0) and m.win_rate == 1.0
    agreement = record.judge["agreement"]
    assert agreement["accuracy"] == 1.0 and agreement["n"] == N and agreement["unmatched_pairs"] == 0
