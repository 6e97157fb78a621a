"""The FastAPI app (the ``serve`` extra): /v1/completions, /v1/chat/completions (both
streamable), /v1/models, /health. Errors are OpenAI-style bodies with a 4xx status; the server
keeps serving. A request whose client leaves, or whose deadline passes, stops generating."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid

from fastapi import Request

from ...errors import KTMError
from ...model import KTMModel
from ...sampling import SamplingConfig
from .batcher import Batcher, Job
from .config import ServeConfig
from .limits import BodyLimits
from .protocol import ChatRequest, CompletionRequest, error_body
from .stops import first_stop, safe_length


def create_app(model: KTMModel, config: ServeConfig | None = None):
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    cfg = config or ServeConfig()
    model.eval()
    batcher = Batcher(model, cfg.max_batch, cfg.batch_wait_ms)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="ktm", lifespan=lifespan)
    app.state.batcher = batcher

    def fail(status: int, message: str, kind: str = "invalid_request_error", param=None):
        return JSONResponse(error_body(message, kind, param), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return fail(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}", param=where)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > cfg.max_body_bytes):
            return fail(413, f"request body over {cfg.max_body_bytes} bytes")
        if cfg.api_key and request.url.path != "/health":  # every route but the health check
            given = request.headers.get("authorization", "").encode("utf-8", "surrogateescape")
            if not secrets.compare_digest(given, f"Bearer {cfg.api_key}".encode()):
                return fail(401, "invalid or missing API key", "authentication_error")
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok", "k": model.k, "batches": batcher.batches}

    @app.get("/v1/models")
    async def models():
        return {
            "object": "list",
            "data": [{"id": cfg.model_name, "object": "model", "owned_by": "ktm", "k": model.k}],
        }

    def sampling_of(req) -> SamplingConfig:
        greedy = req.temperature == 0
        return SamplingConfig(
            max_new_tokens=req.max_tokens,
            do_sample=not greedy,
            temperature=1.0 if greedy else req.temperature,
            top_p=req.top_p,
            seed=req.seed,
        )

    def make_job(prompt: str, suffix: str | None, req):
        if req.model not in (None, cfg.model_name):
            message = f"model {req.model!r} is not served here; use {cfg.model_name!r}"
            return None, fail(404, message, param="model")
        prompt_ids, suffix_ids = model.encode_prompts([prompt], [suffix] if suffix else None)
        n = len(prompt_ids[0]) + len(suffix_ids[0])
        if n > cfg.max_prompt_tokens:
            return None, fail(
                400,
                f"prompt has {n} tokens; this server takes at most {cfg.max_prompt_tokens}",
                param="prompt",
            )
        if (req.budget is not None or req.budget_positions is not None) and model.k == 1:
            return None, fail(400, "budget: selective expansion needs a model with K > 1",
                              param="budget")  # fmt: skip
        if req.budget is not None and req.budget_positions is not None:
            return None, fail(400, "give budget or budget_positions, not both", param="budget")
        try:
            need = model.positions_needed(
                len(prompt_ids[0]), len(suffix_ids[0]), req.max_tokens, req.budget,
                req.budget_positions,
            )  # fmt: skip
        except KTMError as e:
            return None, fail(400, str(e), param="budget_positions")
        limit = model.max_positions
        if limit is not None and need > limit:
            return None, fail(
                400, f"prompt + max_tokens need {need} positions; the model has {limit}",
                param="max_tokens",
            )  # fmt: skip
        job = Job(prompt_ids[0], suffix_ids[0], sampling_of(req), req.budget, req.budget_positions)
        return job, None

    async def next_event(job: Job, request: Request, deadline: float):
        """The job's next event; ``("gone", None)`` once its client has left or
        ``("timeout", None)`` once its deadline passed — the job is cancelled then."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                job.cancel()
                return "timeout", None
            try:
                return await asyncio.wait_for(job.events.get(), min(1.0, left))
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    job.cancel()
                    return "gone", None

    async def respond(job: Job, req, chat: bool, request: Request):
        await batcher.submit(job)
        deadline = time.monotonic() + cfg.request_timeout_s
        stops = req.stop or []
        timed_out = f"request timed out after {cfg.request_timeout_s} s"
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        tok = model.tokenizer

        def usage(n_new: int) -> dict:
            return {
                "prompt_tokens": job.tokens_in,
                "completion_tokens": n_new,
                "total_tokens": job.tokens_in + n_new,
                "compressed_prompt_tokens": job.tokens_out,
            }

        if not req.stream:
            ids, reason = [], "length"
            while True:
                kind, value = await next_event(job, request, deadline)
                if kind == "token":
                    ids.append(value)
                    if stops and first_stop(tok.decode(ids, skip_special_tokens=True), stops):
                        job.cancel()
                        reason = "stop"
                        break
                elif kind == "done":
                    reason = value
                    break
                elif kind == "timeout":
                    return fail(408, timed_out, "timeout_error")
                elif kind == "gone":
                    return Response(status_code=499)
                else:
                    return fail(500, value, "server_error")
            text = tok.decode(ids, skip_special_tokens=True)
            cut = first_stop(text, stops)
            text = text if cut is None else text[:cut]
            choice = {"index": 0, "finish_reason": reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice.update({"text": text, "logprobs": None})
            return {"id": rid, "object": obj, "created": created, "model": cfg.model_name,
                    "choices": [choice], "usage": usage(len(ids))}  # fmt: skip

        async def stream():
            def chunk(delta: str | None, reason: str | None, first: bool = False) -> str:
                if chat:
                    d = {"role": "assistant", "content": ""} if first else {}
                    if delta:
                        d["content"] = delta
                    choice = {"index": 0, "delta": d, "finish_reason": reason}
                else:
                    choice = {"index": 0, "text": delta or "", "finish_reason": reason,
                              "logprobs": None}  # fmt: skip
                body = {
                    "id": rid,
                    "object": obj + (".chunk" if chat else ""),
                    "created": created,
                    "model": cfg.model_name,
                    "choices": [choice],
                }
                return f"data: {json.dumps(body)}\n\n"

            ids, shown = [], ""
            try:
                if chat:
                    yield chunk(None, None, first=True)
                while True:
                    kind, value = await next_event(job, request, deadline)
                    if kind == "token":
                        ids.append(value)
                        text = tok.decode(ids, skip_special_tokens=True)
                        cut = first_stop(text, stops)
                        if cut is not None:  # a stop sequence: end here, without it
                            job.cancel()
                            if text[len(shown) : cut]:
                                yield chunk(text[len(shown) : cut], None)
                            yield chunk(None, "stop")
                            break
                        if text.endswith("\ufffd"):  # half a multi-byte character: wait
                            continue
                        safe = text[: safe_length(text, stops)]
                        delta, shown = safe[len(shown) :], safe
                        if delta:
                            yield chunk(delta, None)
                    elif kind == "done":
                        text = tok.decode(ids, skip_special_tokens=True)
                        if text[len(shown) :]:
                            yield chunk(text[len(shown) :], None)
                        yield chunk(None, value)
                        break
                    elif kind == "gone":
                        return
                    else:
                        message = timed_out if kind == "timeout" else value
                        err = error_body(message, "server_error")
                        yield f"data: {json.dumps(err)}\n\n"
                        break
                yield "data: [DONE]\n\n"
            finally:  # the client went away (or the stream ended): no more work for it
                job.cancel()

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        job, error = make_job(req.prompt, req.suffix, req)
        return error or await respond(job, req, chat=False, request=request)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request):
        messages = [m.model_dump() for m in req.messages]
        try:
            prompt = model.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception as e:  # no template, or one the messages do not fit
            return fail(400, f"cannot apply the chat template: {e}", param="messages")
        job, error = make_job(prompt, None, req)
        return error or await respond(job, req, chat=True, request=request)

    return BodyLimits(app, cfg.max_body_bytes, cfg.body_timeout_s)
