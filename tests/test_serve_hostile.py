"""`ktm serve` against clients that go away, stall, send too much, or send what it does not do:
abandoned work never holds the batch, and every bad value is a 4xx with an OpenAI-style body."""

import http.client
import json
import socket
import time
import urllib.request

import pytest

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

from ktm.recipes.serve.app import create_app  # noqa: E402
from ktm.recipes.serve.config import ServeConfig  # noqa: E402
from ktm.recipes.serve.local import running  # noqa: E402

PROMPT = "Tree: +AB\n++CD, Parent: AB, Answer: "
STEP_S = 0.03  # each decoder call made slow, so a long generation takes seconds


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    import torch

    from ktm import KTMConfig, KTMModel

    torch.manual_seed(0)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4, merger_init="random"))
    real = model.hidden_states

    def slow(*a, **kw):
        time.sleep(STEP_S)
        return real(*a, **kw)

    model.hidden_states = slow
    cfg = ServeConfig(model_name="tiny", api_key="secret", max_batch=8, batch_wait_ms=20,
                      max_body_bytes=100_000, request_timeout_s=4.0,
                      body_timeout_s=1.0)  # fmt: skip
    app = create_app(model, cfg)
    with running(app) as port:
        yield app, "127.0.0.1", port


def _client(host, port):
    return openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key="secret", max_retries=0)


def _post(host, port, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://{host}:{port}/v1/completions", data=body, method="POST",
        headers={"Authorization": "Bearer secret", "Content-Type": "application/json",
                 **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_abandoned_streams_stop_and_the_next_request_is_served_promptly(server):
    """Eight streaming clients that hang up after their first event: their generations stop,
    and a 1-token request sent after them is answered in well under their length."""
    app, host, port = server
    long = json.dumps({"prompt": PROMPT, "max_tokens": 400, "stream": True, "temperature": 0})
    for _ in range(8):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        headers = {"Authorization": "Bearer secret", "Content-Type": "application/json"}
        conn.request("POST", "/v1/completions", long, headers)
        r = conn.getresponse()
        r.fp.readline()  # the first event, then the client goes away
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    t0 = time.monotonic()
    status, body = _post(host, port, json.dumps({"prompt": PROMPT, "max_tokens": 1}).encode())
    seconds = time.monotonic() - t0
    assert status == 200 and body["choices"]
    assert seconds < 400 * STEP_S / 2, f"a 1-token request waited {seconds:.1f} s"


def test_a_request_past_its_deadline_is_stopped_with_408(server):
    _, host, port = server
    t0 = time.monotonic()
    status, body = _post(host, port, json.dumps({"prompt": PROMPT, "max_tokens": 480,
                                                 "temperature": 0}).encode())  # fmt: skip
    assert status == 408 and "timed out after 4.0 s" in body["error"]["message"]
    assert time.monotonic() - t0 < 8


def test_a_chunked_body_over_the_limit_is_refused(server):
    """However much a chunked body offers, the server reads the limit + 1 byte, answers 413,
    and its memory (this process: the server runs in a thread) stays flat."""
    from ktm.recipes.bench.memory import current_rss_bytes

    _, host, port = server
    before = current_rss_bytes()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest("POST", "/v1/completions")
    for k, v in (("Authorization", "Bearer secret"), ("Content-Type", "application/json"),
                 ("Transfer-Encoding", "chunked")):  # fmt: skip
        conn.putheader(k, v)
    conn.endheaders()
    chunk = b"x" * 2**20
    try:
        for _ in range(64):  # 64 MB offered; the limit is 100 kB
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: what we want
    r = conn.getresponse()
    assert r.status == 413 and "over 100000 bytes" in json.loads(r.read())["error"]["message"]
    conn.close()
    if before is not None:
        assert current_rss_bytes() - before < 32 * 2**20, "the server kept the body"


def test_a_client_that_sends_its_body_too_slowly_is_cut_off(server):
    _, host, port = server
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest("POST", "/v1/completions")
    for k, v in (("Authorization", "Bearer secret"), ("Content-Length", "1000")):
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(b'{"pro')  # then nothing
    t0 = time.monotonic()
    r = conn.getresponse()
    assert r.status == 408 and time.monotonic() - t0 < 5
    conn.close()


@pytest.mark.parametrize(
    "body, headers, status, message",
    [
        ({"prompt": PROMPT, "seed": 2**70}, None, 400, "seed"),
        ({"prompt": PROMPT, "max_tokens": True}, None, 400, "max_tokens"),
        ({"prompt": PROMPT, "max_tokens": 3.0}, None, 400, "max_tokens"),
        ({"prompt": PROMPT, "logprobs": 2}, None, 400, "logprobs: not supported"),
        ({"prompt": PROMPT, "echo": True, "best_of": 2}, None, 400, "echo, best_of"),
        ({"prompt": PROMPT, "n": 2}, None, 400, "n"),
        ({"prompt": PROMPT, "stop": ["a"] * 5}, None, 400, "stop takes up to 4"),
        ({"prompt": PROMPT}, {"Authorization": "Bearer s\u00e9cret"}, 401, "API key"),
    ],
)
def test_bad_values_are_4xx_with_an_openai_body(server, body, headers, status, message):
    _, host, port = server
    raw = json.dumps(body).encode()
    if headers and "Authorization" in headers:  # a non-ASCII byte in the header
        headers = {"Authorization": headers["Authorization"].encode("latin-1").decode("latin-1")}
    got, reply = _post(host, port, raw, headers)
    assert got == status and message in reply["error"]["message"], reply


def test_a_lone_surrogate_and_a_tiny_top_p(server):
    _, host, port = server
    raw = b'{"prompt": "Tree: \\ud800 +AB", "max_tokens": 2}'
    got, reply = _post(host, port, raw)
    assert got == 400 and "lone surrogate" in reply["error"]["message"]
    got, reply = _post(host, port, json.dumps({"prompt": PROMPT, "max_tokens": 2,
                                                "top_p": 1e-300, "seed": 1}).encode())  # fmt: skip
    assert got == 200 and reply["choices"][0]["finish_reason"] in ("stop", "length")


def test_every_route_but_health_needs_the_key(server):
    _, host, port = server
    for path in ("/docs", "/openapi.json", "/v1/models"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10)
        assert e.value.code == 401
    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=10) as r:
        assert r.status == 200


def test_stop_sequences_end_the_text(server):
    """``stop`` ends generation before the first stop sequence, streamed or not."""
    _, host, port = server
    client = _client(host, port)
    full = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0)
    text = full.choices[0].text
    assert len(text) > 4
    stop = text[2:4]
    cut = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0,
                                    stop=[stop])  # fmt: skip
    expected = text[: text.find(stop)]
    assert cut.choices[0].text == expected and cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=12,
                                         temperature=0, stop=stop, stream=True)  # fmt: skip
    parts = list(streamed)
    assert "".join(c.choices[0].text for c in parts) == expected
    assert parts[-1].choices[0].finish_reason == "stop"
