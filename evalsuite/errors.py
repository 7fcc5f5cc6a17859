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
