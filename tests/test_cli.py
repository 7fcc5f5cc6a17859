"""The command line end to end on a tiny model: the run record, resume, data parallel, bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jsonlines
import pytest

from evalsuite.cli import main
from tests.conftest import read_results

TASKS = "truthfulqa_mc1,truthfulqa_mc2,crows_pairs,winogender,wikitext"


def run_cli(*args: str) -> int:
    return main(["run", *args])


def test_run_writes_a_complete_record_and_second_run_is_all_cached(tiny_model_dir, data_dir, tmp_path, capsys):
    out1, out2, cache = tmp_path / "r1", tmp_path / "r2", tmp_path / "cache.sqlite"
    common = ["--model", str(tiny_model_dir), "--tasks", TASKS, "--data-dir", str(data_dir), "--limit", "6",
              "--cache", str(cache), "--device", "cpu", "--max-length", "256"]
    assert run_cli(*common, "--output", str(out1)) == 0
    summary = capsys.readouterr().out
    assert "truthfulqa_mc2" in summary and "± stderr" in summary
    record = read_results(out1)
    for name in TASKS.split(","):
        task = record["tasks"][name]
        assert task["n"] == 6 and task["primary_metric"] in task["metrics"]
        assert set(task["stderr"]) == set(task["metrics"])
        assert len(task["data"]["sha256"]) == 64 and task["version"]
        rows = list(jsonlines.open(out1 / "samples" / f"{name}.jsonl"))
        assert len(rows) == 6 and {"doc_id", "requests", "responses", "scores"} <= set(rows[0])
    assert len(record["model"]["fingerprint"]) == 64
    assert record["versions"]["torch"] and record["config"]["seed"] == 1234
    assert record["requests"]["from_cache"] == 0 and record["requests"]["computed"] > 0
    # Same command again: nothing is recomputed and the numbers are identical.
    assert run_cli(*common, "--output", str(out2)) == 0
    again = read_results(out2)
    assert again["requests"]["computed"] == 0
    assert {n: t["metrics"] for n, t in again["tasks"].items()} == {n: t["metrics"] for n, t in record["tasks"].items()}


def _cached_rows(cache: Path) -> int:
    try:
        with sqlite3.connect(cache, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_9_midway_then_resume_gives_identical_results(tiny_model_dir, data_dir, tmp_path):
    cache = tmp_path / "cache.sqlite"
    args = [sys.executable, "-m", "evalsuite", "run", "--model", str(tiny_model_dir), "--tasks", "crows_pairs",
            "--data-dir", str(data_dir), "--limit", "700", "--cache", str(cache), "--device", "cpu",
            "--batch-size", "2"]
    proc = subprocess.Popen(args + ["--output", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _cached_rows(cache) == 0 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _cached_rows(cache)
    assert 0 < done_before < 2 * 700, "the kill should land after the first chunk and before the end"
    assert not (tmp_path / "killed" / "results.json").exists()
    subprocess.run(args + ["--output", str(tmp_path / "resumed")], check=True, capture_output=True)
    resumed = read_results(tmp_path / "resumed")
    assert resumed["requests"]["from_cache"] == done_before
    assert resumed["requests"]["computed"] == resumed["requests"]["unique"] - done_before
    fresh_args = [a if a != str(cache) else str(tmp_path / "fresh.sqlite") for a in args]
    subprocess.run(fresh_args + ["--output", str(tmp_path / "fresh")], check=True, capture_output=True)
    fresh = read_results(tmp_path / "fresh")
    expected = fresh["tasks"]["crows_pairs"]["metrics"]
    assert resumed["tasks"]["crows_pairs"]["metrics"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
def test_data_parallel_with_two_processes_equals_single_process(tiny_model_dir, data_dir, tmp_path):
    base = ["-m", "evalsuite", "run", "--model", str(tiny_model_dir),
            "--tasks", "crows_pairs,winogender,truthfulqa_mc2",
            "--data-dir", str(data_dir), "--limit", "40", "--device", "cpu"]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run(launcher + base + ["--cache", str(tmp_path / "dp.sqlite"), "--output", str(tmp_path / "dp")],
                   check=True, capture_output=True, env=env, timeout=600)
    one_process = ["--cache", str(tmp_path / "one.sqlite"), "--output", str(tmp_path / "one")]
    subprocess.run([sys.executable] + base + one_process,
                   check=True, capture_output=True, timeout=600)
    dp, one = read_results(tmp_path / "dp"), read_results(tmp_path / "one")
    assert dp["config"]["processes"] == 2 and one["config"]["processes"] == 1
    for name in one["tasks"]:
        assert dp["tasks"][name]["metrics"] == pytest.approx(one["tasks"][name]["metrics"], abs=1e-6)


# ---- bad input: one clear line, non-zero exit ---------------------------------------------------


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "an error message was expected"
    return err[-1]


def test_unknown_task_message(capsys):
    assert run_cli("--tasks", "winogendr") == 2
    line = _error_line(capsys)
    assert line.startswith("error: Unknown task 'winogendr'") and "did you mean winogender" in line


def test_missing_model(tmp_path, capsys):
    assert run_cli("--model", str(tmp_path / "nope"), "--tasks", "crows_pairs", "--output", str(tmp_path / "o")) == 2
    assert "does not exist" in _error_line(capsys)


def test_folder_without_safetensors_is_refused(tiny_model_dir, tmp_path, capsys):
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            (unsafe / f.name).write_bytes(f.read_bytes())
    (unsafe / "pytorch_model.bin").write_bytes(b"not a pickle we would ever open")
    assert run_cli("--model", str(unsafe), "--tasks", "crows_pairs", "--output", str(tmp_path / "o")) == 2
    assert "Could not load model" in _error_line(capsys)


def test_remote_code_is_not_run_unless_asked(tiny_model_dir, tmp_path, capsys):
    custom = tmp_path / "custom"
    custom.mkdir()
    for f in tiny_model_dir.iterdir():
        (custom / f.name).write_bytes(f.read_bytes())
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel"}
    (custom / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "ran"
    (custom / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    code = run_cli("--model", str(custom), "--tasks", "crows_pairs", "--output", str(tmp_path / "o"), "--limit", "1")
    assert not marker.exists()
    assert code in (0, 2)  # either loaded as a plain Llama (auto_map ignored) or refused, never executed


def test_unwritable_output_fails_before_loading_the_model(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = run_cli("--model", str(tmp_path / "never-loaded"), "--tasks", "crows_pairs", "--output", str(blocker / "o"))
    assert code == 2
    assert "Cannot write to output folder" in _error_line(capsys)


def test_malformed_dataset_row(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "crows_pairs").mkdir()
    (tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv").write_text(
        ",sent_more,sent_less,stereo_antistereo,bias_type\n0,a,b,maybe,age\n"
    )
    code = run_cli("--model", str(tiny_model_dir), "--tasks", "crows_pairs", "--data-dir", str(tmp_path),
                   "--output", str(tmp_path / "o"))
    assert code == 2
    line = _error_line(capsys)
    assert "crows_pairs_anonymized.csv at line 2" in line and "Fix:" in line


def test_corrupt_checkpoint(tiny_model_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_model_dir.iterdir():
        data = f.read_bytes()
        (broken / f.name).write_bytes(data[:1000] if f.name.endswith(".safetensors") else data)
    assert run_cli("--model", str(broken), "--tasks", "crows_pairs", "--output", str(tmp_path / "o")) == 2
    line = _error_line(capsys)
    assert "corrupt or truncated" in line and line.count("\n") == 0


def test_missing_api_key_stops_cleanly_and_keeps_the_generations(tiny_model_dir, offline, capsys, monkeypatch):
    tmp_path = offline
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    common = ["--model", str(tiny_model_dir), "--tasks", "realtoxicityprompts:k=2:max_tokens=4:variant=plain",
              "--cache", str(tmp_path / "c.sqlite"), "--device", "cpu"]
    assert run_cli(*common, "--toxicity-scorer", "perspective", "--output", str(tmp_path / "a")) == 2
    assert "PERSPECTIVE_API_KEY" in _error_line(capsys)
    assert run_cli(*common, "--toxicity-scorer", "bilstm", "--output", str(tmp_path / "b")) == 0
    record = read_results(tmp_path / "b")
    n_prompts = record["tasks"]["realtoxicityprompts"]["n"]
    # The generations came from the cache; only the toxicity scores were new.
    assert record["requests"]["from_cache"] == n_prompts
    assert record["requests"]["computed"] == 2 * n_prompts
    assert record["scorers"]["toxicity"]["spec"] == "bilstm"


# ---- checked before anything is loaded ---------------------------------------------------------


@pytest.mark.parametrize(("flag", "value"), [("--limit", "0"), ("--limit", "-3"), ("--batch-size", "-1"),
                                             ("--batch-size", "0"), ("--batch-size", "abc"), ("--max-length", "0")])
def test_non_positive_numbers_are_refused(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("--model", "never-loaded", flag, value)
    assert exit_.value.code == 2
    assert f"argument {flag}: must be a positive whole number, got '{value}'" in _error_line(capsys)


def test_batch_size_auto_is_accepted(tiny_model_dir, data_dir, tmp_path):
    assert run_cli("--model", str(tiny_model_dir), "--tasks", "crows_pairs", "--limit", "2", "--batch-size", "auto",
                   "--data-dir", str(data_dir), "--cache", str(tmp_path / "c.sqlite"), "--device", "cpu",
                   "--output", str(tmp_path / "o")) == 0
    assert read_results(tmp_path / "o")["config"]["batch_size"] == 16  # AUTO_BATCH on a CPU


def test_empty_task_list_is_refused_before_loading(capsys):
    assert run_cli("--model", "never-loaded", "--tasks", "") == 2
    assert "--tasks names no task" in _error_line(capsys)
    assert run_cli("--model", "never-loaded", "--tasks", "crows_pairs,crows_pairs") == 2
    assert "listed twice" in _error_line(capsys)


def test_bad_task_parameters_fail_before_loading(capsys):
    assert run_cli("--model", "never-loaded", "--tasks", "realtoxicityprompts:k=many") == 2
    assert "k='many' is not a whole number" in _error_line(capsys)
    assert run_cli("--model", "never-loaded", "--tasks", "wikitext:splt=valid") == 2
    assert "its parameters are: split (default 'test')" in _error_line(capsys)


def test_missing_data_fails_before_loading_the_model(tmp_path, capsys):
    never = str(tmp_path / "never-loaded")
    assert run_cli("--model", never, "--tasks", "crows_pairs", "--data-dir", str(tmp_path)) == 2
    assert "crows_pairs: data file not found" in _error_line(capsys)


def test_revision_2025_is_text_not_a_number(tiny_model_dir, data_dir, tmp_path):
    """The README's own example: "2025" names a revision, it must not become the number 2025."""
    assert run_cli("--model", str(tiny_model_dir), "--tasks", "truthfulqa_mc2:revision=2025", "--limit", "2",
                   "--data-dir", str(data_dir), "--cache", str(tmp_path / "c.sqlite"), "--device", "cpu",
                   "--output", str(tmp_path / "o")) == 0
    task = read_results(tmp_path / "o")["tasks"]["truthfulqa_mc2"]
    assert task["params"] == {"revision": "2025"} and task["data"]["source"].endswith("truthfulqa/mc_task.json")


def test_cache_paths_that_cannot_be_a_cache(tiny_model_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    assert run_cli("--model", str(tiny_model_dir), "--tasks", "crows_pairs", "--cache", str(runs),
                   "--output", str(tmp_path / "o")) == 2
    line = _error_line(capsys)
    assert "is a folder, not a cache file" in line and "delete" not in line
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run_cli("--model", str(tiny_model_dir), "--tasks", "crows_pairs", "--cache", str(blocker / "c.sqlite"),
                   "--output", str(tmp_path / "o2")) == 2
    assert "is a file, so no folder can be made there" in _error_line(capsys)


def test_read_only_home_with_cache_elsewhere(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    """A home that cannot be written (here: a path under a regular file) is only needed for what must
    live there; remembered digests are skipped."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("EVALSUITE_HOME", str(blocker / "home"))
    assert run_cli("--model", str(tiny_model_dir), "--tasks", "crows_pairs", "--limit", "2", "--data-dir",
                   str(data_dir), "--cache", str(tmp_path / "c.sqlite"), "--device", "cpu",
                   "--output", str(tmp_path / "o")) == 0


# ---- the output folder ---------------------------------------------------------------------------


def test_an_output_folder_holding_a_run_is_refused_unless_overwrite(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--model", str(tiny_model_dir), "--data-dir", str(data_dir), "--limit", "2", "--device", "cpu",
              "--cache", str(tmp_path / "c.sqlite"), "--output", str(out), "--max-length", "64"]
    assert run_cli(*common, "--tasks", "crows_pairs,wikitext") == 0
    assert run_cli(*common, "--tasks", "winogender") == 2
    line = _error_line(capsys)
    assert "already holds a run record" in line and "--overwrite" in line
    assert set(read_results(out)["tasks"]) == {"crows_pairs", "wikitext"}  # untouched
    assert run_cli(*common, "--tasks", "winogender", "--overwrite") == 0
    assert set(read_results(out)["tasks"]) == {"winogender"}
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["winogender.jsonl"]  # no stale samples


def test_two_variants_of_one_task_are_both_reported(tiny_model_dir, data_dir, tmp_path, capsys):
    assert run_cli("--model", str(tiny_model_dir), "--tasks", "wikitext,wikitext:split=valid", "--limit", "1",
                   "--data-dir", str(data_dir), "--cache", str(tmp_path / "c.sqlite"), "--device", "cpu",
                   "--max-length", "64", "--output", str(tmp_path / "o")) == 0
    tasks = read_results(tmp_path / "o")["tasks"]
    assert set(tasks) == {"wikitext", "wikitext:split=valid"}
    assert tasks["wikitext"]["data"]["source"] != tasks["wikitext:split=valid"]["data"]["source"]
    assert tasks["wikitext"]["metrics"] != tasks["wikitext:split=valid"]["metrics"]
    summary = capsys.readouterr().out
    assert "wikitext:split=valid" in summary and "lower" in summary  # perplexity: lower is better


def test_summary_shows_directions_and_the_crows_pairs_ideal(tiny_model_dir, data_dir, tmp_path, capsys):
    assert run_cli("--model", str(tiny_model_dir), "--tasks", "crows_pairs,truthfulqa_mc1", "--limit", "2",
                   "--data-dir", str(data_dir), "--cache", str(tmp_path / "c.sqlite"), "--device", "cpu",
                   "--output", str(tmp_path / "o")) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if " pct_stereotype " in line)
    assert "ideal 0.5" in row
    assert "higher" in next(line for line in lines if line.startswith("truthfulqa_mc1"))
    seconds_cells = [line.split()[-1] for line in lines[2:] if line.startswith(("crows_pairs", "truthfulqa_mc1"))]
    assert len(seconds_cells) == 2  # seconds once per task, not on every metric row


def test_model_without_tokenizer_is_refused(tiny_model_dir, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.name == "config.json" or f.suffix == ".safetensors":
            (bare / f.name).write_bytes(f.read_bytes())
    assert run_cli("--model", str(bare), "--tasks", "wikitext", "--output", str(tmp_path / "o")) == 2
    assert "has no tokenizer files" in _error_line(capsys)


@pytest.mark.slow
def test_two_first_runs_convert_the_default_model_once(tmp_path):
    """Two runs on a fresh home at once: both finish (the second uses the first one's conversion)."""
    env = os.environ | {"EVALSUITE_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("EVALSUITE_DATA", None)
    args = [sys.executable, "-m", "evalsuite", "run", "--model", "default", "--tasks", "crows_pairs", "--limit", "1",
            "--device", "cpu"]
    procs = [subprocess.Popen(args + ["--cache", str(tmp_path / f"c{i}.sqlite"), "--output", str(tmp_path / f"o{i}")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for i in range(2)]
    errors = [p.communicate(timeout=600)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    models = tmp_path / "home" / "models"
    assert [p.name for p in models.iterdir()] == ["smollm2-135m-instruct"]


def test_a_full_disk_is_one_line(tmp_path):
    """/dev/full refuses every write with ENOSPC: the error a full disk gives."""
    import errno

    from evalsuite.fileio import disk_full

    with pytest.raises(OSError) as caught, open("/dev/full", "w") as full:
        full.write("x" * 100_000)
        full.flush()
    assert caught.value.errno == errno.ENOSPC
    message = str(disk_full(caught.value, tmp_path / "run"))
    assert f"The disk holding {tmp_path / 'run'} is full" in message and "run the same command again" in message


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(tiny_model_dir, data_dir, tmp_path):
    cache = tmp_path / "cache.sqlite"
    args = [sys.executable, "-m", "evalsuite", "run", "--model", str(tiny_model_dir), "--tasks", "crows_pairs",
            "--data-dir", str(data_dir), "--limit", "700", "--cache", str(cache), "--device", "cpu",
            "--batch-size", "2", "--output", str(tmp_path / "run")]
    # A shell that starts jobs in the background makes them ignore SIGINT, and Python then keeps
    # ignoring it: restore the default so the run sees Ctrl-C however the tests were started.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while _cached_rows(cache) == 0 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted: every finished request is cached" in err.decode().strip().splitlines()[-1]
    done = _cached_rows(cache)
    assert done > 0 and not (tmp_path / "run" / "results.json").exists()
    subprocess.run(args, check=True, capture_output=True)
    assert read_results(tmp_path / "run")["requests"]["from_cache"] == done
