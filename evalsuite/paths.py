"""Where evalsuite keeps things it builds once: the converted default model, the request cache,
remembered file digests."""

import contextlib
import os
from pathlib import Path


def home() -> Path:
    """The evalsuite cache folder (``EVALSUITE_HOME``, else ``~/.cache/evalsuite``).

    Created when possible; a read-only home is not an error here: only what must be written there
    (a converted model, the default cache) fails, with its own message."""
    root = os.environ.get("EVALSUITE_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "evalsuite"
    )
    path = Path(root)
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return path


def digest_memo() -> Path:
    """Remembered sha256 digests of big files (a speed-up only: skipped when not writable)."""
    return home() / "digests.json"


def packaged_folder(import_name: str, dist: str, fix: str) -> Path:
    """The folder of an installed package that ships weights, found without importing it (the
    packages' own ``__init__`` pulls in frameworks evalsuite does not need)."""
    import importlib.util

    from evalsuite.errors import EvalsuiteError

    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise EvalsuiteError(f"The '{dist}' package is needed but not installed.", fix)
    return Path(next(iter(spec.submodule_search_locations)))
