"""Toxicity scorers: the offline BiLSTM for real, Perspective against a local fake server."""

import json
import os
import pickle
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from evalsuite.errors import EvalsuiteError
from evalsuite.scorers import toxicity
from evalsuite.scorers.toxicity import (
    MAXLEN,
    KerasVocab,
    PerspectiveScorer,
    load_toxicity_scorer,
    load_vocab,
    pad_pre,
    read_keras_tokenizer,
)

TOXIC = [
    "you are a stupid worthless idiot",
    "shut up you fucking moron",
    "go to hell you piece of shit",
    "what a pathetic loser, nobody likes you, dumbass",
]
BENIGN = [
    "Thank you for the lovely dinner last night",
    "The weather is nice today",
    "The meeting is moved to Thursday at 3pm.",
    "I really enjoyed reading your article about gardening.",
]


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def bilstm(cache_home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALSUITE_HOME", str(cache_home))
        yield load_toxicity_scorer("bilstm", device="cpu")


def test_bilstm_separates_toxic_from_benign(bilstm):
    toxic, benign = bilstm.score(TOXIC), bilstm.score(BENIGN)
    assert all(s > 0.8 for s in toxic), toxic
    assert all(s < 0.05 for s in benign), benign
    assert np.mean(toxic) - np.mean(benign) > 0.8
    labels = bilstm.label_scores(["shut up you fucking moron"])[0]
    assert list(labels) == ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    assert labels["obscene"] > 0.5 and labels["threat"] < 0.5


def test_bilstm_batches_and_empty_inputs(bilstm, monkeypatch):
    texts = TOXIC + BENIGN + [""]
    one_by_one = [bilstm.score([t])[0] for t in texts]
    monkeypatch.setattr(bilstm, "batch_size", 3)  # several batches with a ragged last one
    assert bilstm.score(texts) == pytest.approx(one_by_one, abs=1e-5)
    assert bilstm.score([]) == []
    assert len(bilstm.fingerprint) == 64


def test_bilstm_vocab_json_lives_in_evalsuite_home(bilstm, cache_home):
    (json_path,) = cache_home.glob("toxicity/bilstm-tokenizer-*.json")
    assert KerasVocab(**json.loads(json_path.read_text())) == bilstm.vocab
    # Only words the model can see are kept (the pickle holds 210k).
    assert bilstm.vocab.num_words == 20000 and max(bilstm.vocab.word_index.values()) == 19999


def _keras_lstm(x: np.ndarray, kernel, recurrent, bias) -> np.ndarray:
    """A Keras LSTM layer written out step by step (gates i, f, c, o; one bias)."""
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h = c = np.zeros(recurrent.shape[0])
    out = []
    for xt in x:
        i, f, g, o = np.split(xt @ kernel + h @ recurrent + bias, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out)


def test_torch_module_matches_keras_semantics(bilstm):
    path = toxicity._packaged_model_dir() / "model.weights.h5"
    with h5py.File(path, "r") as f:
        w = {n: f["layers"][n][()].astype(np.float64) for n in toxicity._h5_arrays(f["layers"])}
    ids = np.concatenate([np.zeros(60, dtype=np.int64), np.random.default_rng(0).integers(1, 20000, 40)])
    x = w["embedding/vars/0"][ids]
    cell = "bidirectional/{}_layer/cell/vars/{}"
    fwd = _keras_lstm(x, *(w[cell.format("forward", k)] for k in range(3)))
    bwd = _keras_lstm(x[::-1], *(w[cell.format("backward", k)] for k in range(3)))[::-1]  # go_backwards
    pooled = np.concatenate([fwd, bwd], axis=1).max(axis=0)
    hidden = np.maximum(pooled @ w["dense/vars/0"] + w["dense/vars/1"], 0)
    expected = 1 / (1 + np.exp(-(hidden @ w["dense_1/vars/0"] + w["dense_1/vars/1"])))
    with torch.no_grad():
        got = bilstm.model(torch.from_numpy(ids)[None]).numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_keras_tokenisation_on_hand_vocab():
    vocab = KerasVocab(word_index={"hello": 1, "world": 2, "<oov>": 3, "rare": 5}, num_words=5)
    # Punctuation and tabs/newlines become separators, case is folded, '-' splits, "'" does not.
    assert vocab.words("Hello,WORLD!\tit's\nwell-known") == ["hello", "world", "it's", "well", "known"]
    assert vocab.encode("Hello, WORLD! rare unknown") == [1, 2]  # index >= num_words dropped, too
    vocab.oov_token = "<oov>"
    assert vocab.encode("Hello, WORLD! rare unknown") == [1, 2, 3, 3]


def test_keras_tokenisation_on_packaged_vocab(bilstm):
    index = bilstm.vocab.word_index
    assert bilstm.vocab.encode("You are an IDIOT!!! qzxqzxqzx") == [index[w] for w in ("you", "are", "an", "idiot")]
    assert bilstm.vocab.encode("Don't.") == [index["don't"]]


def test_padding_is_pre_and_truncation_keeps_the_end():
    short, long = [1, 2, 3], list(range(1, 151))
    batch = pad_pre([short, long, []])
    assert batch.shape == (3, MAXLEN) and batch.dtype == torch.long
    assert batch[0].tolist() == [0] * 97 + [1, 2, 3]
    assert batch[1].tolist() == list(range(51, 151))
    assert batch[2].tolist() == [0] * MAXLEN


def test_vocab_json_is_converted_once(tmp_path):
    pickle_path = toxicity._packaged_model_dir() / "tokenizer.pickle"
    json_path = tmp_path / "vocab.json"
    first = load_vocab(pickle_path, json_path)
    assert json.loads(json_path.read_text())["num_words"] == 20000
    assert list(tmp_path.iterdir()) == [json_path]  # no temporary file left behind
    second = load_vocab(tmp_path / "no-such.pickle", json_path)  # would raise if it read the pickle
    assert second == first


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_other_classes(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        read_keras_tokenizer(path)
    assert not marker.exists()


def test_unknown_scorer_name():
    with pytest.raises(EvalsuiteError, match="bilstm, detoxify, perspective"):
        load_toxicity_scorer("vibes")


def test_detoxify_missing_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "detoxify", None)  # makes `import detoxify` fail
    with pytest.raises(EvalsuiteError, match="--toxicity-scorer bilstm") as caught:
        load_toxicity_scorer("detoxify")
    assert "\n" not in str(caught.value)


def test_auto_falls_back_to_bilstm(monkeypatch, cache_home, bilstm):
    monkeypatch.setitem(sys.modules, "detoxify", None)
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    monkeypatch.setenv("EVALSUITE_HOME", str(cache_home))
    scorer = load_toxicity_scorer("auto")
    assert scorer.name == "bilstm" and scorer.fingerprint == bilstm.fingerprint


# --- Perspective against a fake server -----------------------------------------------------------


class _FakePerspective(BaseHTTPRequestHandler):
    """'flaky' gets one 429 first, 'broken' always 503, 'bad' a 400, anything else a score."""

    requests: list[tuple[str, dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["comment"]["text"]
        self.requests.append((self.path, body))
        seen = sum(1 for _, b in self.requests if b["comment"]["text"] == text)
        if text == "broken" or (text == "flaky" and seen == 1):
            self._reply(503 if text == "broken" else 429, {"error": {"message": "slow down"}})
        elif text == "bad":
            self._reply(400, {"error": {"message": "Attribute TOXICITY does not support request languages: xx"}})
        else:
            summary = {"value": 0.42, "type": "PROBABILITY"}
            self._reply(200, {"attributeScores": {"TOXICITY": {"summaryScore": summary}}})

    def _reply(self, code: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_perspective():
    _FakePerspective.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakePerspective)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1alpha1/comments:analyze"
    server.shutdown()
    server.server_close()


def _perspective(endpoint: str, **options) -> PerspectiveScorer:
    options = {"qps": 1000, "max_retries": 2, "backoff_s": 0.01, "timeout_s": 5, **options}
    return load_toxicity_scorer("perspective", api_key="k3y", endpoint=endpoint, **options)


def test_perspective_needs_a_key(monkeypatch):
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(EvalsuiteError, match="PERSPECTIVE_API_KEY"):
        load_toxicity_scorer("perspective")


def test_perspective_retries_after_429(fake_perspective):
    scorer = _perspective(fake_perspective)
    assert scorer.score(["flaky", "fine"]) == [0.42, 0.42]
    assert scorer.errors == [None, None]
    assert [b["comment"]["text"] for _, b in _FakePerspective.requests] == ["flaky", "flaky", "fine"]
    path, body = _FakePerspective.requests[0]
    assert path.endswith("?key=k3y") and body["requestedAttributes"] == {"TOXICITY": {}}


def test_perspective_persistent_failure_is_none(fake_perspective):
    scorer = _perspective(fake_perspective)
    assert scorer.score(["broken", "bad", "fine"]) == [None, None, 0.42]
    assert "503" in scorer.errors[0] and "3 attempts" in scorer.errors[0]
    assert "400" in scorer.errors[1] and "languages" in scorer.errors[1]
    texts = [b["comment"]["text"] for _, b in _FakePerspective.requests]
    assert texts.count("broken") == 3 and texts.count("bad") == 1  # a 400 is not retried


def test_perspective_rate_limit(fake_perspective):
    scorer = _perspective(fake_perspective, qps=20)
    start = time.monotonic()
    scorer.score(["a", "b", "c", "d", "e"])
    assert time.monotonic() - start >= 4 / 20 - 0.01


def test_perspective_unreachable_server_is_none():
    scorer = _perspective("http://127.0.0.1:9/closed", max_retries=1)
    assert scorer.score(["hello"]) == [None]
    assert scorer.errors[0]
