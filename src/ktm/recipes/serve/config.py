"""``ktm serve``'s settings (no web framework needed to read them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import option


@dataclass
class ServeConfig:
    """``ktm serve`` settings (``max_prompt_tokens``: longest prompt, before compression)."""

    model_name: str = option("ktm", help="the model id clients ask for")
    api_key: str | None = option(
        None, help="require `Authorization: Bearer KEY` on every route but /health"
    )
    max_prompt_tokens: int = option(
        8192, help="longest prompt accepted, in tokens before compression"
    )
    max_batch: int = option(8, help="requests decoded together at most")
    batch_wait_ms: float = option(10.0, help="how long a batch waits to fill, in ms")
    max_body_bytes: int = option(4_000_000, help="largest request body accepted, in bytes")
    request_timeout_s: float = option(
        300.0, help="a request still generating after this many seconds is stopped (408)"
    )
    body_timeout_s: float = option(
        30.0, help="a client still sending its request body after this many seconds is cut off"
    )
