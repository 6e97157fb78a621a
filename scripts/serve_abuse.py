"""Two attacks on `ktm serve`, measured on a real model (for docs/reliability.md).

1. Eight streaming clients ask for long generations and hang up after the first event; then
   one client asks for 1 token: how long it waits (the abandoned work must not hold the batch).
2. One client sends a chunked body of 300 MB: the answer, and the server's resident memory
   before and after.

python scripts/serve_abuse.py --model smollm2-135m --out serve-abuse.json
"""

import argparse
import http.client
import json
import platform
import socket
import time

import torch

from ktm import KTMConfig, KTMModel
from ktm.io_utils import write_json_atomic
from ktm.recipes.bench.memory import current_rss_bytes
from ktm.recipes.serve.app import create_app
from ktm.recipes.serve.config import ServeConfig
from ktm.recipes.serve.local import running

PROMPT = "Tree: +AB\n++CD\n++EF\n+++GH, Task: Parent/Child Relationship, Parent: AB, Answer: "
HEADERS = {"Content-Type": "application/json"}


def one_token_seconds(port: int) -> float:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", json.dumps({"prompt": PROMPT, "max_tokens": 1}),
                 HEADERS)  # fmt: skip
    assert conn.getresponse().status == 200
    conn.close()
    return time.monotonic() - t0


def abandon_streams(port: int, clients: int, max_tokens: int) -> None:
    body = json.dumps({"prompt": PROMPT, "max_tokens": max_tokens, "stream": True,
                       "temperature": 0})  # fmt: skip
    for _ in range(clients):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request("POST", "/v1/completions", body, HEADERS)
        conn.getresponse().fp.readline()  # the first event, then hang up
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()


def chunked_body(port: int, megabytes: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.putrequest("POST", "/v1/completions")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * 2**20
    try:
        for _ in range(megabytes):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except (BrokenPipeError, ConnectionResetError):
        pass
    status = conn.getresponse().status
    conn.close()
    return status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=1000)
    ap.add_argument("--megabytes", type=int, default=300)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = KTMModel.from_base(args.model, KTMConfig(k=4))
    app = create_app(model, ServeConfig(model_name="ktm"))
    with running(app) as port:
        idle = one_token_seconds(port)
        abandon_streams(port, args.clients, args.max_tokens)
        after_abandon = one_token_seconds(port)
        rss_before = current_rss_bytes()
        status = chunked_body(port, args.megabytes)
        rss_after = current_rss_bytes()
    result = {
        "command": "python scripts/serve_abuse.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": {"threads": torch.get_num_threads(), "processor": platform.machine(),
                    "torch": torch.__version__},
        "one_token_idle_s": round(idle, 3),
        "one_token_after_abandoned_streams_s": round(after_abandon, 3),
        "abandoned": {"clients": args.clients, "max_tokens": args.max_tokens},
        "chunked_body": {"megabytes": args.megabytes, "status": status,
                         "rss_before_mib": round(rss_before / 2**20, 1),
                         "rss_after_mib": round(rss_after / 2**20, 1)},
    }  # fmt: skip
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
