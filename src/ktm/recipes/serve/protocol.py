"""Request bodies of the OpenAI-compatible API, validated strictly, and OpenAI-style error
bodies. Options ktm does not implement are refused by name, never silently ignored."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TOKENS_LIMIT = 4096
MAX_STOPS = 4
# Options of the OpenAI API that ktm serve does not implement: refused when given a value.
UNSUPPORTED = ("logprobs", "top_logprobs", "echo", "best_of", "logit_bias", "presence_penalty",
               "frequency_penalty", "tools", "functions", "response_format")  # fmt: skip


def _text(v: str, what: str) -> str:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (a lone surrogate)") from None
    return v


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    max_tokens: int = Field(16, ge=1, le=MAX_TOKENS_LIMIT, strict=True)
    temperature: float = Field(1.0, ge=0.0, le=2.0, strict=True)
    top_p: float = Field(1.0, gt=0.0, le=1.0, strict=True)
    seed: int | None = Field(None, ge=0, lt=2**63, strict=True)
    stream: bool = Field(False, strict=True)
    n: int = Field(1, ge=1, le=1, strict=True)
    stop: str | list[str] | None = None
    # ktm extensions: selective expansion (a share of the prompt's tokens, or positions)
    budget: float | None = Field(None, gt=0.0, le=1.0)
    budget_positions: int | None = Field(None, ge=1, le=2**31, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data):
        if isinstance(data, dict):
            given = [k for k in UNSUPPORTED if data.get(k) not in (None, False, 0)]
            if given:
                raise ValueError(f"{', '.join(given)}: not supported by ktm serve; leave it out")
        return data

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > MAX_STOPS or any(not s for s in stops):
            raise ValueError(f"stop takes up to {MAX_STOPS} non-empty strings")
        return [_text(s, "stop") for s in stops]


class CompletionRequest(_Request):
    """``POST /v1/completions``: ``prompt`` is compressed; ``suffix`` (ktm extension) is not."""

    prompt: str
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt is empty")
        return _text(v, "prompt")

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, v: str | None) -> str | None:
        return v if v is None else _text(v, "suffix")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        return _text(v, "content")


class ChatRequest(_Request):
    """``POST /v1/chat/completions``: the conversation through the tokenizer's chat template,
    compressed as one prompt."""

    messages: list[ChatMessage] = Field(min_length=1)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None):
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}
