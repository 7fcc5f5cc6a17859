"""The run record read back: a real record round-trips through ``load_run``; folders that are not
records, records from a newer schema and damaged samples files are refused with one clear line."""

from __future__ import annotations

import json

import pytest

from evalsuite.cli import main
from evalsuite.errors import EvalsuiteError
from evalsuite.results import SCHEMA, load_run


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    cache = out.parent / "cache.sqlite"
    code = main(["run", "--model", str(tiny_model_dir), "--tasks", "crows_pairs,wikitext,wikitext:split=valid",
                 "--data-dir", str(data_dir), "--limit", "3", "--cache", str(cache), "--device", "cpu",
                 "--max-length", "128", "--output", str(out)])
    assert code == 0
    return out


def test_a_real_record_round_trips(run_dir):
    raw = json.loads((run_dir / "results.json").read_text())
    run = load_run(run_dir)
    assert run.schema == raw["evalsuite_record"] == SCHEMA
    assert set(run.tasks) == set(raw["tasks"]) == {"crows_pairs", "wikitext", "wikitext:split=valid"}
    crows = run.tasks["crows_pairs"]
    assert crows.metrics == raw["tasks"]["crows_pairs"]["metrics"] and crows.n == 3
    assert crows.group == "alignment" and crows.ideal == {"pct_stereotype": 0.5}
    assert run.tasks["wikitext:split=valid"].params == {"split": "valid"}
    assert run.tasks["wikitext"].group == "capability"
    samples = run.samples("crows_pairs")
    assert [s.doc_id for s in samples] == [json.loads(line)["doc_id"] for line in
                                           (run_dir / crows.samples_file).read_text().splitlines()]
    assert samples[0].scores["pct_stereotype"] in (0.0, 1.0) and samples[0].requests[0]["kind"] == "Loglikelihood"
    # Both wikitext variants were computed and both are reported (different documents, different numbers).
    assert run.samples("wikitext")[0].doc != run.samples("wikitext:split=valid")[0].doc
    assert run.lineage[-1]["stage"] == "base" and run.lineage[-1]["fingerprint"] == run.model["fingerprint"]


def test_not_a_run_record(tmp_path):
    with pytest.raises(EvalsuiteError, match="is not a run record \\(no results.json"):
        load_run(tmp_path)
    with pytest.raises(EvalsuiteError, match="is not a folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "results.json").write_text('{"tasks": {}}')
    with pytest.raises(EvalsuiteError, match="not an evalsuite run record"):
        load_run(tmp_path)
    (tmp_path / "results.json").write_text('{"evalsuite_record": 2, "tas')
    with pytest.raises(EvalsuiteError, match="damaged or truncated"):
        load_run(tmp_path)


def test_a_record_from_a_newer_schema_is_refused(run_dir, tmp_path):
    raw = json.loads((run_dir / "results.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps(raw | {"evalsuite_record": SCHEMA + 1}))
    with pytest.raises(EvalsuiteError, match=f"newer evalsuite \\(run record schema {SCHEMA + 1}"):
        load_run(tmp_path)


def test_a_truncated_samples_file_names_file_and_line(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    samples = copy / load_run(copy).tasks["crows_pairs"].samples_file
    text = samples.read_text()
    samples.write_text(text[: len(text) - 40])  # cut inside the last line
    with pytest.raises(EvalsuiteError, match=r"crows_pairs.jsonl at line 3: not JSON"):
        load_run(copy).samples("crows_pairs")
    samples.unlink()
    with pytest.raises(EvalsuiteError, match="the file is missing"):
        load_run(copy).samples("crows_pairs")
