"""Limits a client cannot talk its way around: the request body's size however it is sent
(``Content-Length`` or chunked), and the time a client may take to send it.

An ASGI wrapper reads the body before the app sees it, stopping at ``max_bytes`` + 1 or when
``timeout_s`` has passed, and answers 413 or 408 itself; what it read is replayed to the app.
"""

from __future__ import annotations

import asyncio
import json
import time

from .protocol import error_body


class BodyLimits:
    def __init__(self, app, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s
        self.state = app.state  # the app's state (its batcher) stays reachable

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _answer(send, 413, f"request body over {self.max_bytes} bytes")
        chunks, size, more = [], 0, True
        deadline = time.monotonic() + self.timeout_s
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                return await _answer(send, 408, f"request body not received in {self.timeout_s} s")
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _answer(send, 413, f"request body over {self.max_bytes} bytes")
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        return await self.app(scope, replay, send)


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps(error_body(message)).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
