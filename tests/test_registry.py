"""Finding and building tasks: names, parameters, and a third-party package that adds a task through the
``evalsuite.tasks`` entry point without touching evalsuite."""

import subprocess
import sys
import textwrap

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.registry import get_task

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "evalsuite-plugin-demo"
version = "0.0.1"

[project.entry-points."evalsuite.tasks"]
capitals = "capitals_task:capitals"
"""

PLUGIN_MODULE = '''
"""A tiny likelihood task living in its own package."""
import hashlib
from evalsuite.requests import Loglikelihood
from evalsuite.task import Dataset, Task
import math
import pytest
from evalsuite.errors import EvalsuiteError
from evalsuite.registry import get_task
from evalsuite.requests import LoglikelihoodResult, RollingResult
from evalsuite.stats import binary_from_logprobs, entropy_bits, ratio_of_sums
from evalsuite.tasks import crows_pairs, truthfulqa, wikitext, winogender

ROWS = [("France", "Paris", "Rome"), ("Italy", "Rome", "Paris"), ("Japan", "Tokyo", "Lima")]


def load(data_dir):
    docs = [{"id": i, "country": c, "right": r, "wrong": w} for i, (c, r, w) in enumerate(ROWS)]
    return Dataset(docs, "builtin:capitals", hashlib.sha256(repr(ROWS).encode()).hexdigest())


def capitals():
    return Task(
        name="capitals",
        load=load,
        requests=lambda d: [Loglikelihood(f"The capital of {d['country']} is", " " + d[k]) for k in ("right", "wrong")],
        score=lambda d, r: {"acc": float(r[0].logprob > r[1].logprob)},
        primary_metric="acc",
        data="built into the plugin",
    )
'''


@pytest.mark.slow
def test_installed_plugin_task_is_listed_and_runs(tmp_path, tiny_model_dir):
    src = tmp_path / "plugin"
    src.mkdir()
    (src / "pyproject.toml").write_text(textwrap.dedent(PLUGIN_PYPROJECT))
    (src / "capitals_task.py").write_text(PLUGIN_MODULE)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(src)],
        check=True, capture_output=True,
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([sys.executable, "-m", "evalsuite", "tasks"], capture_output=True, text=True, env=env,
                            check=True)
    assert "capitals" in listed.stdout and "built into the plugin" in listed.stdout
    out = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "evalsuite", "run", "--model", str(tiny_model_dir), "--tasks", "capitals",
         "--output", str(out), "--cache", str(tmp_path / "c.sqlite"), "--device", "cpu"],
        check=True, capture_output=True, env=env | {"EVALSUITE_HOME": str(tmp_path / "home")},
    )
    import json

    record = json.loads((out / "results.json").read_text())
    assert record["tasks"]["capitals"]["n"] == 3
    assert 0.0 <= record["tasks"]["capitals"]["metrics"]["acc"] <= 1.0


def test_unknown_task_suggests_close_names():
    with pytest.raises(EvalsuiteError, match=r"did you mean .*truthfulqa_mc1"):
        get_task("truthfulqa_mc")
    with pytest.raises(EvalsuiteError, match="no parameter colour"):
        get_task("crows_pairs", colour="red")


def test_parameters_take_the_type_of_their_default():
    rtp = get_task("realtoxicityprompts", k="3", temperature="0.7", top_p="1", seed="5", variant="plain")
    assert (rtp.params["k"], rtp.params["temperature"], rtp.params["seed"]) == (3, 0.7, 5)
    assert isinstance(rtp.params["top_p"], float)
    assert get_task("truthfulqa_mc2", revision="2025").params == {"revision": "2025"}  # text stays text
    assert get_task("truthfulqa_gen", judge="1").params["judge"] == 1
    for bad, kind in (({"k": "2.5"}, "a whole number"), ({"temperature": "warm"}, "a number")):
        with pytest.raises(EvalsuiteError, match=kind):
            get_task("realtoxicityprompts", **bad)


def test_task_specs_allow_colons_in_values_and_refuse_malformed_ones():
    from evalsuite.registry import build_tasks, parse_task_spec

    assert parse_task_spec("wikitext:split=valid") == ("wikitext", {"split": "valid"})
    assert parse_task_spec("x:judge=rm:ckpt/rm:k=2") == ("x", {"judge": "rm:ckpt/rm", "k": "2"})
    for bad in ("wikitext:valid", "wikitext:split=valid:split=test"):
        with pytest.raises(EvalsuiteError):
            parse_task_spec(bad)
    keys = [t.key for t in build_tasks("wikitext,wikitext:split=valid,crows_pairs")]
    assert keys == ["wikitext", "wikitext:split=valid", "crows_pairs"]
    assert [t.key for t in build_tasks("wikitext:split=valid")] == ["wikitext"]  # one variant: the plain name
