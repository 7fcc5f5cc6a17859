"""The scorers one run may call, created on first use: a run with no toxicity task never loads
the toxicity classifier, and a run with no judged task never loads a judge.

Pairwise judges (``Score("pairwise:<judge spec>")``, see ``scorers.pairwise``) are named by the
task that asks for them, so one run may hold several; each is built once."""

from __future__ import annotations

from evalsuite.errors import EvalsuiteError
from evalsuite.requests import Score

ROLES = ("toxicity", "judge", "pairwise")


class ScorerSet:
    def __init__(self, toxicity: str = "bilstm", judge: str = "minilm", device: str = "auto"):
        self.specs = {"toxicity": toxicity, "judge": judge}
        self.device = device
        self._built: dict[str, object] = {}

    def _get(self, role: str, spec: str = ""):
        if role == "pairwise":
            return self.pairwise(spec)
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

    def pairwise(self, spec: str):
        """The pairwise judge named ``spec`` (``rm:``, ``lm:`` or ``labels:``), built on first use."""
        from evalsuite.scorers.pairwise import load_pair_judge, scorer_name

        key = scorer_name(spec)
        if key not in self._built:
            self._built[key] = load_pair_judge(spec, device=self.device)
        return self._built[key]

    def namespace(self, scorer: str) -> str:
        """Cache identity of a scorer: its fingerprint (weights, and for judges the prompt templates)."""
        role, _, rest = scorer.partition(":")
        return f"scorer:{role}:{self._get(role, rest).fingerprint}"

    def describe(self) -> dict:
        out = {}
        for role, obj in self._built.items():
            spec = role.partition(":")[2] if role.startswith("pairwise:") else self.specs[role]
            out[role] = {"spec": spec, "fingerprint": obj.fingerprint}
            if getattr(obj, "template_sha256", None):
                out[role]["template_sha256"] = obj.template_sha256
        return out

    def score(self, requests: list[Score]) -> list[float | None]:
        """Scores of requests that all name the same scorer."""
        role, _, template = requests[0].scorer.partition(":")
        if role == "pairwise":
            from evalsuite.scorers.pairwise import decode_outputs

            return self._get(role, template).prefer([(r.context, *decode_outputs(r.text)) for r in requests])
        scorer = self._get(role)
        if role == "toxicity":
            return scorer.score([r.text for r in requests])
        return scorer.score(template, [(r.context, r.text) for r in requests])
