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
from importlib.metadata import entry_points
from typing import Callable

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
    """Build task ``name``; ``params`` go to its factory (e.g. ``revision="2025"``)."""
    _load_all()
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, _FACTORIES, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run 'evalsuite tasks' to list them"
        raise EvalsuiteError(f"Unknown task '{name}'.", hint)
    factory = _FACTORIES[name]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise EvalsuiteError(
            f"Task '{name}' has no parameter {', '.join(unknown)}.", f"its parameters are: {', '.join(accepted) or 'none'}"
        )
    built = factory(**params)
    built.name = name
    built.params = {k: v.default for k, v in accepted.items()} | params
    return built
