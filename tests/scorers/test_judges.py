"""Judges: MiniLM for real, the LM judge on the tiny random model."""

from __future__ import annotations

import math
import re

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.requests import Loglikelihood
from evalsuite.scorers import judges
from evalsuite.scorers.judges import LMJudge, load_judge, split_sentences

pytestmark = pytest.mark.usefixtures("in_judge_home")


SOURCE = (
    "The Skerry Light was built in 1852 on a rock off the northern coast. Its lamp burned whale oil "
    "until 1890, when it was replaced by a paraffin burner. The keeper's cottage was painted white."
)


FAITHFUL = "The Skerry Light, on a rock off the north coast, dates from 1852. Until 1890 its lamp burned whale oil."


INVENTED = FAITHFUL + " It was designed by the engineer Robert Stevenson and cost 9,000 pounds."


def test_split_sentences():
    assert split_sentences(" One. Two?  Three!\nFour ") == ["One.", "Two?", "Three!", "Four"]
    assert split_sentences("  \n ") == []


def test_similarity_judge_prefers_the_faithful_text(minilm):
    faithful, invented, empty = minilm.score("supported", [(SOURCE, FAITHFUL), (SOURCE, INVENTED), (SOURCE, "")])
    assert faithful > 0.5 > invented, (faithful, invented)
    assert empty > 0.99  # claims nothing, so nothing unsupported: full support
    # The invented sentence is the weakest link: the text is as supported as that sentence alone.
    alone = minilm.support([(SOURCE, INVENTED.split(". ")[-1])])[0]
    assert minilm.support([(SOURCE, INVENTED)])[0] == pytest.approx(alone, abs=1e-5)


def test_similarity_judge_batches_like_single_items(minilm, monkeypatch):
    items = [(SOURCE, FAITHFUL), (SOURCE, INVENTED), ("Bread is baked.", "Bread is baked in an oven.")]
    one_by_one = [minilm.score("supported", [item])[0] for item in items]
    monkeypatch.setattr(judges, "BATCH", 2)  # several embedding batches
    assert minilm.score("supported", items) == pytest.approx(one_by_one, abs=1e-5)
    assert minilm.score("supported", []) == []
    assert re.fullmatch(r"[0-9a-f]{64}", minilm.fingerprint)


def test_similarity_judge_rejects_other_templates(minilm):
    with pytest.raises(EvalsuiteError, match=r"cannot score the 'truthful' template.*--judge MODEL") as err:
        minilm.score("truthful", [("Q?", "A.")])
    assert "\n" not in str(err.value)
    with pytest.raises(EvalsuiteError, match="'nonsense' template.*one of: truthful, informative, supported"):
        minilm.score("nonsense", [("Q?", "A.")])


@pytest.fixture(scope="module")
def lm_judge(tiny_model_dir, judge_home) -> LMJudge:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALSUITE_HOME", str(judge_home))
        return load_judge(str(tiny_model_dir), device="cpu")


@pytest.mark.parametrize("template", ["truthful", "informative", "supported"])
def test_lm_judge_is_the_yes_no_softmax_of_loglikelihoods(lm_judge, tiny_model, template):
    items = [(SOURCE, FAITHFUL), (SOURCE, INVENTED), ("What colour was the cottage?", "White.")]
    probs = lm_judge.score(template, items)
    for (context, text), p in zip(items, probs):
        prompt = judges.TEMPLATES[template].format(context=context, text=text)
        assert prompt.endswith("Answer (Yes or No):")
        yes, no = tiny_model.loglikelihood([Loglikelihood(prompt, " Yes"), Loglikelihood(prompt, " No")])
        expected = math.exp(yes.logprob) / (math.exp(yes.logprob) + math.exp(no.logprob))
        assert 0.0 < p < 1.0 and p == pytest.approx(expected, rel=1e-4)
    assert len(set(probs)) == len(probs)  # the random model still tells the prompts apart


def test_lm_judge_fingerprint_covers_the_templates(lm_judge, minilm, monkeypatch):
    before = lm_judge.fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", before) and before != minilm.fingerprint
    monkeypatch.setitem(judges.TEMPLATES, "supported", judges.TEMPLATES["supported"].replace("every", "each"))
    assert lm_judge.fingerprint != before
    monkeypatch.undo()
    assert lm_judge.fingerprint == before
    with pytest.raises(EvalsuiteError, match="cannot score the 'fluent' template"):
        lm_judge.score("fluent", [("Q?", "A.")])


def test_load_judge_names_the_judge_flag(tmp_path):
    with pytest.raises(EvalsuiteError, match=r"--judge .*missing.*Fix: pass --judge MODEL"):
        load_judge(str(tmp_path / "missing"), device="cpu")
