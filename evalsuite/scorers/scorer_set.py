"""The scorers one run may call, created on first use: a run with no toxicity task never loads
the toxicity classifier, and a run with no judged task never loads a judge."""

from __future__ import annotations

from evalsuite.errors import EvalsuiteError
from evalsuite.requests import Score

ROLES = ("toxicity", "judge")


class ScorerSet:
    def __init__(self, toxicity: str = "bilstm", judge: str = "minilm", device: str = "auto"):
        self.specs = {"toxicity": toxicity, "judge": judge}
        self.device = device
        self._built: dict[str, object] = {}

    def _get(self, role: str):
        if role not in ROLES:
            raise EvalsuiteError(f"Unknown scorer '{role}'.", f"tasks may ask for {', '.join(ROLES)}")
        if role not in self._built:
            if role == "toxicity":
                from evalsuite.scorers.toxicity import load_toxicity_scorer

                self._built[role] = load_toxicity_scorer(self.specs[role])
            else:
                from evalsuite.scorers.judges import load_judge

                self._built[role] = load_judge(self.specs[role], device=self.device)
        return self._built[role]

    def namespace(self, scorer: str) -> str:
        """Cache identity of a scorer: its fingerprint (weights, and for judges the prompt templates)."""
        role = scorer.partition(":")[0]
        return f"scorer:{role}:{self._get(role).fingerprint}"

    def describe(self) -> dict:
        return {role: {"spec": self.specs[role], "fingerprint": obj.fingerprint} for role, obj in self._built.items()}

    def score(self, requests: list[Score]) -> list[float | None]:
        """Scores of requests that all name the same scorer."""
        role, _, template = requests[0].scorer.partition(":")
        scorer = self._get(role)
        if role == "toxicity":
            return scorer.score([r.text for r in requests])
        return scorer.score(template, [(r.context, r.text) for r in requests])
