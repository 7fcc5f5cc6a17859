"""One exception type for every user-facing failure.

The CLI prints ``str(error)`` as a single line and exits non-zero, so each message names the
problem and the fix, the way scikit-learn's errors do.
"""


class EvalsuiteError(Exception):
    """A problem the user can fix; the message says what it is and how."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)


def malformed(path, line: int, problem: str) -> EvalsuiteError:
    """The standard error for a bad row of a data file: which file, which line, what is wrong."""
    return EvalsuiteError(
        f"Malformed row in {path} at line {line}: {problem}.", "fix or remove that row, or re-download the file"
    )
