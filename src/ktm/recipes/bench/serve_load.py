"""Load on `ktm serve`: the same requests one at a time, then from C concurrent clients.

The server runs in this process (uvicorn in a thread, loopback); clients are threads using
the standard library's HTTP client. Reports requests per second, latency percentiles, errors,
and the batching gain (concurrent over sequential throughput).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ...model import KTMModel
from ..serve.app import create_app
from ..serve.config import ServeConfig
from ..serve.local import running


def _post(url: str, body: dict) -> tuple[float, bool]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            ok = r.status == 200 and bool(json.loads(r.read())["choices"])
    except Exception:
        ok = False
    return time.perf_counter() - t0, ok


def _phase(url: str, bodies: list[dict], clients: int) -> dict:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda b: _post(url, b), bodies))
    wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in results)
    return {
        "clients": clients,
        "requests": len(bodies),
        "errors": sum(not ok for _, ok in results),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(bodies) / wall, 3),
        "latency_p50_s": round(statistics.median(lat), 3),
        "latency_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3),
    }


def rss_mib() -> float:
    """Current resident memory of this process (MiB; Linux /proc, else the peak)."""
    from .memory import current_rss_bytes, peak_rss_mib

    now = current_rss_bytes()
    return round(now / 2**20, 1) if now is not None else peak_rss_mib()


def _soak(url: str, bodies: list[dict], clients: int, seconds: float) -> dict:
    """``clients`` clients send requests back to back for ``seconds``; memory at both ends."""
    stop = time.monotonic() + seconds
    start_rss = rss_mib()
    counts = {"requests": 0, "errors": 0}
    lock = threading.Lock()

    def client(i: int) -> None:
        j = i
        while time.monotonic() < stop:
            _, ok = _post(url, bodies[j % len(bodies)])
            j += clients
            with lock:
                counts["requests"] += 1
                counts["errors"] += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    timeline = [(0.0, start_rss)]  # memory every ~10% of the soak, to show it stays flat
    begin = time.monotonic()
    while any(t.is_alive() for t in threads):
        time.sleep(min(seconds / 10, 60.0))
        timeline.append((round(time.monotonic() - begin, 1), rss_mib()))
    for t in threads:
        t.join()
    return {"seconds": seconds, "clients": clients, **counts, "rss_start_mib": start_rss,
            "rss_end_mib": rss_mib(), "rss_timeline_mib": timeline}  # fmt: skip


def serve_load_benchmark(
    model: KTMModel,
    prompts: list[str],
    clients: int = 32,
    max_tokens: int = 16,
    max_batch: int = 8,
    soak_seconds: float = 0.0,
) -> dict:
    """Sequential vs ``clients`` concurrent clients, greedy completions of ``prompts``; then,
    with ``soak_seconds``, a steady load for that long with memory measured at both ends."""
    cfg = ServeConfig(model_name="bench", max_batch=max_batch)
    app = create_app(model, cfg)
    bodies = [{"prompt": p, "max_tokens": max_tokens, "temperature": 0} for p in prompts]
    with running(app) as port:
        url = f"http://127.0.0.1:{port}/v1/completions"
        _post(url, bodies[0])  # warm-up
        sequential = _phase(url, bodies, 1)
        concurrent = _phase(url, bodies, clients)
        soak = _soak(url, bodies, clients, soak_seconds) if soak_seconds > 0 else None
    return {
        "sequential": sequential,
        "concurrent": concurrent,
        "batching_gain": round(concurrent["requests_per_s"] / sequential["requests_per_s"], 3),
        "batches_run": app.state.batcher.batches,
        **({"soak": soak} if soak else {}),
    }
