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
