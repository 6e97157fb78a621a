"""`ktm serve` on loopback, driven by the official `openai` client."""

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

from ktm.recipes.serve.app import create_app  # noqa: E402
from ktm.recipes.serve.config import ServeConfig  # noqa: E402
from ktm.recipes.serve.local import running  # noqa: E402

PROMPTS = [f"Tree: +A{c}\n++B{c}, Parent: A{c}, Answer: " for c in "ABCDEFGH"]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    import torch

    from ktm import KTMConfig, KTMModel

    torch.manual_seed(0)
    model = KTMModel.from_base(str(tiny_model_dir), KTMConfig(k=4, merger_init="random"))
    cfg = ServeConfig(model_name="tiny", api_key="secret", max_prompt_tokens=200,
                      max_batch=8, batch_wait_ms=50)  # fmt: skip
    app = create_app(model, cfg)
    with running(app) as port:
        yield model, app, f"http://127.0.0.1:{port}"


def _client(url, key="secret"):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def test_completion_matches_the_model_and_reports_compression(server):
    model, _, url = server
    r = _client(url).completions.create(model="tiny", prompt=PROMPTS[0], max_tokens=5,
                                        temperature=0)  # fmt: skip
    expected = model.generate([PROMPTS[0]], max_new_tokens=5)[0]
    assert r.choices[0].text == expected
    usage = r.usage.model_dump()
    assert usage["compressed_prompt_tokens"] < usage["prompt_tokens"]
    assert usage["completion_tokens"] <= 5


def test_selective_expansion_per_request(server):
    model, _, url = server
    client = _client(url)
    long = PROMPTS[2] + " with some more words to merge here"
    for extra in ({"budget": 0.5}, {"budget_positions": 9}):
        r = client.completions.create(model="tiny", prompt=long, max_tokens=4, temperature=0,
                                      extra_body=extra)  # fmt: skip
        assert r.choices[0].text == model.generate([long], max_new_tokens=4, **extra)[0]
        read = model.compress([long], **extra).tokens_out[0]
        assert r.usage.model_dump()["compressed_prompt_tokens"] == read
    assert read == 9
    for extra in ({"budget": 2}, {"budget_positions": 1}, {"budget": 0.5, "budget_positions": 9},
                  {"budget_positions": "9"}):  # fmt: skip
        with pytest.raises(openai.APIStatusError) as err:
            client.completions.create(model="tiny", prompt=long, max_tokens=2, extra_body=extra)
        assert err.value.status_code == 400, extra


def test_streamed_equals_non_streamed(server):
    _, _, url = server
    client = _client(url)
    full = client.completions.create(model="tiny", prompt=PROMPTS[1], max_tokens=6, temperature=0)
    parts = client.completions.create(model="tiny", prompt=PROMPTS[1], max_tokens=6,
                                      temperature=0, stream=True)  # fmt: skip
    assert "".join(c.choices[0].text for c in parts) == full.choices[0].text
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Hello there"}], max_tokens=4,
        temperature=0,
    )  # fmt: skip
    streamed = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Hello there"}], max_tokens=4,
        temperature=0, stream=True,
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in streamed)
    assert text == chat.choices[0].message.content
    assert chat.choices[0].finish_reason in ("stop", "length")


def test_models_and_health(server):
    _, _, url = server
    assert [m.id for m in _client(url).models.list().data] == ["tiny"]
    with urllib.request.urlopen(url + "/health") as r:
        assert json.loads(r.read())["status"] == "ok"


@pytest.mark.parametrize(
    "kwargs, status",
    [
        (dict(prompt=PROMPTS[0], max_tokens=-1), 400),
        (dict(prompt=PROMPTS[0], max_tokens=10**9), 400),
        (dict(prompt="   ", max_tokens=2), 400),
        (dict(prompt="word " * 400, max_tokens=2), 400),
        (dict(prompt=PROMPTS[0], max_tokens=2, temperature=-1), 400),
        (dict(prompt=PROMPTS[0], max_tokens=2, model="other"), 404),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, kwargs, status):
    _, _, url = server
    client = _client(url)
    kwargs = {"model": "tiny", **kwargs}
    with pytest.raises(openai.APIStatusError) as err:
        client.completions.create(**kwargs)
    assert err.value.status_code == status
    assert err.value.body["message"]  # OpenAI-style error body
    assert client.completions.create(model="tiny", prompt=PROMPTS[0], max_tokens=1).choices


def test_api_key_and_malformed_json(server):
    _, _, url = server
    with pytest.raises(openai.AuthenticationError):
        _client(url, key="wrong").completions.create(model="tiny", prompt="hi", max_tokens=1)
    req = urllib.request.Request(
        url + "/v1/completions", data=b"{not json", method="POST",
        headers={"Authorization": "Bearer secret", "Content-Type": "application/json"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400 and "error" in json.loads(err.value.read())


def test_concurrent_requests_are_batched_and_match_sequential(server):
    _, app, url = server
    client = _client(url)

    def ask(prompt):
        r = client.completions.create(model="tiny", prompt=prompt, max_tokens=4, temperature=0)
        return r.choices[0].text

    sequential = [ask(p) for p in PROMPTS]
    before = app.state.batcher.batches
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        concurrent = list(pool.map(ask, PROMPTS))
    assert concurrent == sequential
    assert app.state.batcher.batches - before < len(PROMPTS)  # some requests shared a batch


def test_bench_serve_writes_results(tiny_model_dir, tmp_path):
    from ktm.cli import main

    out = tmp_path / "load.json"
    assert main(["bench", "serve", "--model", str(tiny_model_dir), "--requests", "8",
                 "--clients", "4", "--max-tokens", "2", "--soak-seconds", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    soak = result["soak"]
    assert soak["requests"] > 0 and soak["errors"] == 0 and soak["rss_end_mib"] > 0
    assert len(soak["rss_timeline_mib"]) >= 2 and soak["rss_timeline_mib"][0][0] == 0.0
    assert result["sequential"]["errors"] == result["concurrent"]["errors"] == 0
    assert result["concurrent"]["requests"] == 8 and result["batching_gain"] > 0


def test_200_concurrent_connections_and_disconnecting_clients(server):
    import http.client

    _, _, url = server
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": "tiny", "prompt": PROMPTS[2], "max_tokens": 2, "temperature": 0})
    headers = {"Authorization": "Bearer secret", "Content-Type": "application/json"}

    def once(_):
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            conn.request("POST", "/v1/completions", body, headers)
            r = conn.getresponse()
            return r.status, json.loads(r.read())["choices"][0]["text"]
        finally:
            conn.close()

    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(once, range(200)))
    assert {s for s, _ in results} == {200} and len({t for _, t in results}) == 1

    # Clients that hang up mid-stream must not hurt the server or the others.
    stream_body = json.dumps({"model": "tiny", "prompt": PROMPTS[3], "max_tokens": 30,
                              "temperature": 0, "stream": True})  # fmt: skip
    for _ in range(20):
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/v1/completions", stream_body, headers)
        r = conn.getresponse()
        assert r.status == 200
        r.fp.readline()  # the first event, then hang up
        conn.sock.close()
        conn.close()
    assert once(0) == results[0]


def test_huge_body_and_wrong_types(server):
    _, _, url = server

    def post(data: bytes):
        req = urllib.request.Request(
            url + "/v1/completions", data=data, method="POST",
            headers={"Authorization": "Bearer secret", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req) as r:
                return r.status
        except urllib.error.HTTPError as e:
            assert "error" in json.loads(e.read())
            return e.code

    import http.client

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/v1/completions")
    for k, v in (("Authorization", "Bearer secret"), ("Content-Type", "application/json"),
                 ("Content-Length", "5000000")):  # fmt: skip
        conn.putheader(k, v)
    conn.endheaders()  # the server answers before reading a 5 MB body
    r = conn.getresponse()
    assert r.status == 413 and "error" in json.loads(r.read())
    conn.close()
    assert post(json.dumps({"prompt": ["a", "list"], "max_tokens": 2}).encode()) == 400
    assert post(json.dumps({"prompt": "hi", "max_tokens": "many"}).encode()) == 400
    assert post(json.dumps({"prompt": "hi", "stream": "yes please"}).encode()) == 400
    assert post(json.dumps({"prompt": "hi", "max_tokens": 1}).encode()) == 200


def test_no_request_field_loads_a_model_or_reads_a_path(server, tiny_model_dir):
    """The served model is fixed at start: a path (even to a real model) in ``model`` is an
    unknown model (404), and fields that name files are ignored, not opened."""
    model, app, url = server
    client = _client(url)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=str(tiny_model_dir), prompt=PROMPTS[0], max_tokens=2)
    plain = client.completions.create(model="tiny", prompt=PROMPTS[0], max_tokens=3, temperature=0)
    extras = {"lora_path": str(tiny_model_dir), "adapter": "/etc/passwd",
              "prompt_embeds": "/etc/passwd", "checkpoint": str(tiny_model_dir)}  # fmt: skip
    tricked = client.completions.create(model="tiny", prompt=PROMPTS[0], max_tokens=3,
                                        temperature=0, extra_body=extras)  # fmt: skip
    assert tricked.choices[0].text == plain.choices[0].text
    assert app.state.batcher.model is model  # still the one model it started with
