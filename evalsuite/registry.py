"""Where tasks are found: the ``@task`` decorator for tasks in this repo, and the ``evalsuite.tasks``
entry-point group for tasks that other packages install.

A third-party package registers ``my_task = "my_pkg.module:my_task_function"`` under
``[project.entry-points."evalsuite.tasks"]``; the function is a ``@task`` (or returns a ``Task``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from importlib.metadata import entry_points

from evalsuite.errors import EvalsuiteError
from evalsuite.task import Task

ENTRY_POINT_GROUP = "evalsuite.tasks"

_FACTORIES: dict[str, Callable[..., Task]] = {}
_loaded = False


def task(fn: Callable[..., Task] | None = None, *, name: str | None = None):
    """Register a function that builds a ``Task``: ``@task`` or ``@task(name="...")``."""

    def register(factory: Callable[..., Task]) -> Callable[..., Task]:
        _FACTORIES[name or factory.__name__] = factory
        return factory

    return register(fn) if fn is not None else register


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import evalsuite.tasks as builtin

    for module in pkgutil.iter_modules(builtin.__path__):  # every module in tasks/ is a task family
        importlib.import_module(f"evalsuite.tasks.{module.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _FACTORIES:
            continue
        try:
            _FACTORIES[ep.name] = ep.load()
        except Exception as err:  # a broken plugin must not take the built-in tasks down with it
            print(f"warning: task plugin '{ep.name}' ({ep.value}) failed to load: {err}")
    _loaded = True


def task_names() -> list[str]:
    _load_all()
    return sorted(_FACTORIES)


def get_task(name: str, **params) -> Task:
    """Build task ``name``; ``params`` go to its factory (e.g. ``revision="2025"``). Values given as
    text (from ``task:key=value``) are converted to the type of the parameter's declared default."""
    _load_all()
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, _FACTORIES, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run 'evalsuite tasks' to list them"
        raise EvalsuiteError(f"Unknown task '{name}'.", hint)
    factory = _FACTORIES[name]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        listed = ", ".join(f"{k} (default {p.default!r})" for k, p in accepted.items()) or "none"
        raise EvalsuiteError(f"Task '{name}' has no parameter {', '.join(unknown)}.", f"its parameters are: {listed}")
    params = {k: convert_param(name, k, v, accepted[k].default) for k, v in params.items()}
    built = factory(**params)
    built.name = name
    built.params = {k: v.default for k, v in accepted.items()} | params
    built.defaults = {k: v.default for k, v in accepted.items()}
    return built


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number"}


def convert_param(task_name: str, key: str, value, default):
    """``value`` as the type of ``default`` when it is text and the default is a bool, int or float."""
    kind = type(default)
    if not isinstance(value, str) or kind not in KIND_WORDS:
        return value
    text = value.strip().lower()
    try:
        if kind is bool:
            if text not in TRUE + FALSE:
                raise ValueError(text)
            return text in TRUE
        return kind(text)
    except ValueError:
        raise EvalsuiteError(
            f"Task '{task_name}': {key}={value!r} is not {KIND_WORDS[kind]}.",
            f"write it as {task_name}:{key}=<{KIND_WORDS[kind]}> (default {default!r})",
        ) from None


# A parameter starts at a ":" followed by "key=": values may hold colons themselves
# (``pairwise_winrate:judge=rm:ckpt/rm``).
_PARAM_START = re.compile(r":(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")


def parse_task_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``name`` or ``name:key=value:key=value``; values stay text (``get_task`` converts them)."""
    name, *pairs = _PARAM_START.split(spec.strip())
    if ":" in name:
        raise EvalsuiteError(f"Bad task parameter in '{spec}'.", "write parameters as task:key=value")
    params = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key.strip() in params:
            raise EvalsuiteError(f"Task parameter '{key.strip()}' is given twice in '{spec}'.", "give it once")
        params[key.strip()] = value.strip()
    return name.strip(), params


def task_key(task: Task) -> str:
    """A task's name plus every parameter that differs from its default (``wikitext:split=valid``)."""
    changed = [f"{k}={v}" for k, v in sorted(task.params.items()) if task.defaults.get(k, object()) != v]
    return ":".join([task.name, *changed])


def build_tasks(specs: str) -> list[Task]:
    """The tasks of a ``--tasks`` value; refuses an empty list and a task listed twice. A task's
    results go under its name, or, when the run holds several variants of it, under ``task_key``
    (``wikitext`` and ``wikitext:split=valid``), so no variant overwrites another."""
    tasks = [get_task(name, **params) for name, params in map(parse_task_spec, filter(str.strip, specs.split(",")))]
    if not tasks:
        raise EvalsuiteError("--tasks names no task.", "give one or more task names (evalsuite tasks lists them)")
    names = [t.name for t in tasks]
    seen: set[str] = set()
    for task in tasks:
        full = task_key(task)
        if full in seen:
            raise EvalsuiteError(f"Task '{full}' is listed twice in --tasks.", "list each task once")
        seen.add(full)
        task.key = full if names.count(task.name) > 1 else task.name
    return tasks
