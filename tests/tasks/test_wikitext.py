"""WikiText-2: perplexities by hand and the detokenizer."""

import math

import pytest

from evalsuite.requests import RollingResult
from evalsuite.tasks import wikitext


def test_wikitext_perplexities_by_hand():
    docs = [{"id": 0, "page": "a b c d"}, {"id": 1, "page": "e f"}]
    scores = [
        wikitext.score(docs[0], [RollingResult(-8.0, 5)]),
        wikitext.score(docs[1], [RollingResult(-4.0, 3)]),
    ]
    assert scores[0]["words"] == 4 and scores[0]["bytes"] == 7
    m = wikitext.aggregate(docs, scores)
    assert m["word_perplexity"].value == pytest.approx(math.exp(12 / 6))
    assert m["byte_perplexity"].value == pytest.approx(math.exp(12 / 10))
    assert m["token_perplexity"].value == pytest.approx(math.exp(12 / 8))
    assert m["bits_per_byte"].value == pytest.approx(12 / 10 / math.log(2))


def test_wikitext_detokenizer():
    raw = " = Title = \n The cat @-@ like animal , weighing 1 @,@ 000 kg ( or 3 @.@ 5 t ) . \n"
    assert wikitext.detokenize(raw) == " = Title =\nThe cat-like animal, weighing 1,000 kg (or 3.5 t).\n"
