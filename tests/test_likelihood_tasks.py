"""Metric definitions of the likelihood tasks, on hand-computed cases, and their loaders on real files."""

import math

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.registry import get_task
from evalsuite.requests import LoglikelihoodResult, RollingResult
from evalsuite.stats import binary_from_logprobs, entropy_bits, ratio_of_sums
from evalsuite.tasks import crows_pairs, truthfulqa, wikitext, winogender


def lls(*values):
    return [LoglikelihoodResult(v, False, 1) for v in values]


# ---- TruthfulQA --------------------------------------------------------------------------------

DOC = {
    "id": 0,
    "question": "q",
    "mc1_targets": {"choices": ["t", "f1", "f2"], "labels": [1, 0, 0]},
    "mc2_targets": {"choices": ["t1", "t2", "f1"], "labels": [1, 1, 0]},
}


def test_mc1_is_one_only_when_the_true_answer_is_most_likely():
    assert truthfulqa.score_mc1(DOC, lls(-1.0, -2.0, -3.0))["acc"] == 1.0
    assert truthfulqa.score_mc1(DOC, lls(-2.0, -1.0, -3.0))["acc"] == 0.0


def test_mc2_is_normalised_true_probability_mass():
    # p = e^-1, e^-2, e^-3 (true, true, false): (e^-1 + e^-2) / (e^-1 + e^-2 + e^-3) = 0.503214 / 0.553001 = 0.90997
    expected = (math.exp(-1) + math.exp(-2)) / (math.exp(-1) + math.exp(-2) + math.exp(-3))
    assert truthfulqa.score_mc2(DOC, lls(-1.0, -2.0, -3.0))["acc"] == pytest.approx(expected)
    assert expected == pytest.approx(0.90997, abs=1e-5)
    # Very negative log-likelihoods must not underflow to 0/0.
    assert truthfulqa.score_mc2(DOC, lls(-2000.0, -2000.0, -2000.0))["acc"] == pytest.approx(2 / 3)


def test_truthfulqa_prompt_has_primer_and_question():
    context = get_task("truthfulqa_mc1").requests(DOC)[0].context
    assert context.startswith("Q: What is human life expectancy in the United States?\nA: Human life")
    assert context.endswith("Barcelona, Spain.\n\nQ: q\nA:")
    assert [r.continuation for r in get_task("truthfulqa_mc2").requests(DOC)] == [" t1", " t2", " f1"]


# ---- CrowS-Pairs -------------------------------------------------------------------------------


def test_crows_pairs_scores_and_aggregate_by_hand():
    docs = [
        {"id": "0", "sent_more": "a", "sent_less": "b", "stereo_antistereo": "stereo", "bias_type": "gender"},
        {"id": "1", "sent_more": "c", "sent_less": "d", "stereo_antistereo": "antistereo", "bias_type": "gender"},
        {"id": "2", "sent_more": "e", "sent_less": "f", "stereo_antistereo": "stereo", "bias_type": "age"},
        {"id": "3", "sent_more": "g", "sent_less": "h", "stereo_antistereo": "stereo", "bias_type": "age"},
    ]
    responses = [lls(-10.0, -12.0), lls(-9.0, -8.0), lls(-5.0, -5.0 - math.log(3)), lls(-7.0, -6.0)]
    scores = [crows_pairs.score(d, r) for d, r in zip(docs, responses)]
    assert [s["pct_stereotype"] for s in scores] == [1.0, 0.0, 1.0, 0.0]
    assert [s["likelihood_diff"] for s in scores] == pytest.approx([2.0, 1.0, math.log(3), 1.0])
    # Pair 3: P(more) = 3/4 after normalising, entropy = -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.811278
    assert scores[2]["pair_entropy_bits"] == pytest.approx(0.811278, abs=1e-6)
    metrics = crows_pairs.aggregate(docs, scores)
    assert metrics["pct_stereotype"].value == 0.5
    assert metrics["distance_from_ideal"].value == 0.0
    assert metrics["pct_stereotype/age"].value == 0.5 and metrics["pct_stereotype/stereo"].value == pytest.approx(2 / 3)
    assert metrics["pct_stereotype"].stderr == pytest.approx(math.sqrt(1 / 3) / 2)  # sd of [1,0,1,0] / sqrt(4)


def test_entropy_and_binary_normalisation():
    assert entropy_bits(0.5) == 1.0 and entropy_bits(1.0) == 0.0
    assert binary_from_logprobs(math.log(0.2), math.log(0.6)) == pytest.approx(0.25)
    assert binary_from_logprobs(0.0, -1000.0) == pytest.approx(1.0)  # no overflow
    assert binary_from_logprobs(-1000.0, 0.0) == pytest.approx(0.0)


# ---- Winogender --------------------------------------------------------------------------------


def wino_doc(gender, label, key="nurse.patient.0"):
    return {"id": f"{key}.{gender}", "sentence": "s", "pronoun": "he", "occupation": "nurse",
            "participant": "patient", "gender": gender, "label": label, "pair_key": key}


def test_winogender_prompt_matches_the_reference_format():
    doc = wino_doc("male", 0) | {"sentence": "The nurse told the patient that he was done.", "pronoun": "he"}
    reqs = winogender.requests(doc)
    assert reqs[0].context == "The nurse told the patient that he was done. ‘He’ refers to the"
    assert [r.continuation for r in reqs[:2]] == [" nurse", " patient"]
    assert reqs[2].context == "The nurse told the patient that" and reqs[2].continuation == " he was done."
    # a pronoun that starts a word elsewhere ("there", "hers") is not the pronoun; no pronoun: all but "The"
    doc |= {"sentence": "The nurse said there that her shift was done.", "pronoun": "her"}
    assert winogender.requests(doc)[2].continuation == " her shift was done."
    doc |= {"sentence": "The nurse was done.", "pronoun": "she"}
    assert (winogender.requests(doc)[2].context, winogender.requests(doc)[2].continuation) == ("The", " nurse was done.")


def test_winogender_accuracy_gap_and_pair_entropy_by_hand():
    docs = [wino_doc("male", 0), wino_doc("female", 0), wino_doc("neutral", 1)]
    responses = [
        lls(-1.0, -2.0, math.log(0.3)),  # predicts occupation: right
        lls(-2.0, -1.0, math.log(0.1)),  # predicts participant: wrong
        lls(-2.0, -1.0, math.log(0.05)),  # predicts participant: right
    ]
    scores = [winogender.score(d, r) for d, r in zip(docs, responses)]
    metrics = winogender.aggregate(docs, scores)
    assert metrics["acc"].value == pytest.approx(2 / 3)
    assert metrics["acc/male"].value == 1.0 and metrics["acc/female"].value == 0.0
    assert metrics["gender_gap"].value == 1.0
    # male:female = 0.3:0.1 -> p_male = 0.75 -> entropy 0.811278 bits
    assert metrics["p_male_over_female"].value == pytest.approx(0.75)
    assert metrics["pair_entropy_bits"].value == pytest.approx(0.811278, abs=1e-6)


# ---- WikiText ----------------------------------------------------------------------------------


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


def test_ratio_of_sums_stderr_by_hand():
    # r = (2+4)/(1+1) = 3; residuals 2-3 = -1 and 4-3 = 1; se = sqrt(2/1 * 2) / 2 = 1
    m = ratio_of_sums([2.0, 4.0], [1.0, 1.0])
    assert m.value == 3.0 and m.stderr == pytest.approx(1.0)


def test_wikitext_detokenizer():
    raw = " = Title = \n The cat @-@ like animal , weighing 1 @,@ 000 kg ( or 3 @.@ 5 t ) . \n"
    assert wikitext.detokenize(raw) == " = Title =\nThe cat-like animal, weighing 1,000 kg (or 3.5 t).\n"


# ---- Loaders on the real files -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name,params,count",
    [
        ("truthfulqa_mc1", {}, 817),
        ("truthfulqa_mc2", {"revision": "2025"}, 790),
        ("crows_pairs", {}, 1508),
        ("winogender", {}, 720),
        ("wikitext", {}, 62),
    ],
)
def test_real_datasets_load(data_dir, name, params, count):
    dataset = get_task(name, **params).load(data_dir)
    assert len(dataset.docs) == count
    assert len({d["id"] for d in dataset.docs}) == count
    assert len(dataset.sha256) == 64


def test_winogender_docs_recover_pronoun_and_label(data_dir):
    docs = {d["id"]: d for d in get_task("winogender").load(data_dir).docs}
    doc = docs["technician.customer.1.female.txt"]
    assert doc["pronoun"] == "she" and doc["label"] == 1 and doc["participant"] == "customer"
    assert sum(d["gender"] == "neutral" for d in docs.values()) == 240
    assert sum(d["participant"] == "someone" for d in docs.values()) == 360


def test_truthfulqa_true_answer_comes_first(data_dir):
    docs = get_task("truthfulqa_mc1").load(data_dir).docs
    assert all(d["mc1_targets"]["labels"][0] == 1 and sum(d["mc1_targets"]["labels"]) == 1 for d in docs)


# ---- Bad input ---------------------------------------------------------------------------------


def test_malformed_rows_name_the_file_and_line(tmp_path):
    (tmp_path / "crows_pairs").mkdir()
    bad = tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv"
    bad.write_text(",sent_more,sent_less,stereo_antistereo,bias_type\n0,a,b,stereo,age\n1,c,,stereo,age\n")
    with pytest.raises(EvalsuiteError, match=r"crows_pairs_anonymized.csv at line 3"):
        get_task("crows_pairs").load(tmp_path)
    (tmp_path / "truthfulqa" / "v0").mkdir(parents=True)
    (tmp_path / "truthfulqa" / "v0" / "mc_task.json").write_text('[{"question": "q", "mc1_targets": {"a": 0}}]')
    with pytest.raises(EvalsuiteError, match=r"mc_task.json at line 1: no answer is marked true"):
        get_task("truthfulqa_mc1").load(tmp_path)
    (tmp_path / "truthfulqa" / "v0" / "mc_task.json").write_text('[{"question": "q",')
    with pytest.raises(EvalsuiteError, match=r"Malformed row in .*mc_task.json at line 1"):
        get_task("truthfulqa_mc1").load(tmp_path)


def test_missing_file_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(EvalsuiteError) as err:
        get_task("winogender").load(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "winogender" / "all_sentences.tsv") in message and "EVALSUITE_DATA" in message


def test_sample_fallback_offline(offline):
    tmp_path = offline
    for name in ("truthfulqa_mc1", "crows_pairs", "winogender", "wikitext"):
        dataset = get_task(name).load(None)
        assert dataset.source.startswith("sample:") and dataset.docs
        assert (tmp_path / "samples" / dataset.source.removeprefix("sample:")).is_file()


def test_unknown_task_suggests_close_names():
    with pytest.raises(EvalsuiteError, match=r"did you mean .*truthfulqa_mc1"):
        get_task("truthfulqa_mc")
    with pytest.raises(EvalsuiteError, match="no parameter colour"):
        get_task("crows_pairs", colour="red")
