"""A third-party package adds a task through the ``evalsuite.tasks`` entry point, without touching evalsuite."""

import subprocess
import sys
import textwrap

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
