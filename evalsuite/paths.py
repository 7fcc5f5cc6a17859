"""Where evalsuite keeps things it builds once: the converted default model and the request cache."""

import os
from pathlib import Path


def home() -> Path:
    """The evalsuite cache folder (``EVALSUITE_HOME``, else ``~/.cache/evalsuite``)."""
    root = os.environ.get("EVALSUITE_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "evalsuite"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def packaged_folder(import_name: str, dist: str, fix: str) -> Path:
    """The folder of an installed package that ships weights, found without importing it (the
    packages' own ``__init__`` pulls in frameworks evalsuite does not need)."""
    import importlib.util

    from evalsuite.errors import EvalsuiteError

    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise EvalsuiteError(f"The '{dist}' package is needed but not installed.", fix)
    return Path(next(iter(spec.submodule_search_locations)))
