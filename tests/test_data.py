"""Loading every task's data: real files, malformed rows, missing files, the offline samples."""

import pytest

from evalsuite.errors import EvalsuiteError
from evalsuite.registry import get_task


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


# Each task's real file with one byte that is not UTF-8 put into a known line.
NON_UTF8_CASES = [
    ("crows_pairs", {}, ["crows_pairs/crows_pairs_anonymized.csv"], 5),
    ("winogender", {}, ["winogender/all_sentences.tsv", "winogender/templates.tsv"], 4),
    ("truthfulqa_mc1", {}, ["truthfulqa/v0/mc_task.json"], 3),
    ("truthfulqa_gen", {}, ["truthfulqa/v0/TruthfulQA.csv"], 4),
    ("wikitext", {}, ["wikitext2/test.txt"], 6),
]


@pytest.mark.parametrize(("name", "params", "files", "line"), NON_UTF8_CASES)
def test_a_byte_that_is_not_utf8_names_the_file_and_line(data_dir, tmp_path, name, params, files, line):
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((data_dir / rel).read_bytes())
    target = tmp_path / files[0]
    rows = target.read_bytes().split(b"\n")
    rows[line - 1] = rows[line - 1][:10] + b"\xff" + rows[line - 1][10:]
    target.write_bytes(b"\n".join(rows))
    with pytest.raises(EvalsuiteError, match=rf"{target.name} at line {line}: byte 0xff is not UTF-8"):
        get_task(name, **params).load(tmp_path)
