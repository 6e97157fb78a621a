"""Dynamic batching: requests that arrive within a short window run as one batch.

One worker thread owns the model. The event loop collects requests for up to ``wait_ms``
(or until ``max_batch``), groups those with the same sampling settings, and runs each group
as one compressed batch with a KV cache; every step's tokens go back to the requests' event
queues, so streaming and non-streaming requests share batches.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ...errors import KTMError
from ...model import KTMModel
from ...sampling import SamplingConfig


@dataclass
class Job:
    """One request: its inputs, and the queue its events arrive on.

    Events: ``("token", id)``, then ``("done", finish_reason)`` or ``("error", message)``.
    """

    prompt_ids: list[int]
    suffix_ids: list[int]
    sampling: SamplingConfig
    budget: float | None = None  # selective expansion (None and None: the model's own)
    budget_positions: int | None = None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    tokens_in: int = 0
    tokens_out: int = 0
    cancelled: bool = False  # its client went away or its deadline passed: stop working on it

    def cancel(self) -> None:
        self.cancelled = True

    def key(self) -> tuple:
        s = self.sampling
        return (s.do_sample, s.temperature, s.top_k, s.top_p, s.seed)


class Batcher:
    def __init__(self, model: KTMModel, max_batch: int = 8, wait_ms: float = 10.0) -> None:
        if max_batch < 1 or wait_ms < 0:
            raise KTMError("max_batch must be >= 1 and wait_ms >= 0")
        self.model = model
        self.max_batch = max_batch
        self.wait = wait_ms / 1000
        self.queue: asyncio.Queue[Job] | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ktm-model")
        self.batches = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, job: Job) -> Job:
        assert self.queue is not None, "Batcher.start() first"
        await self.queue.put(job)
        return job

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            deadline = time.monotonic() + self.wait
            while len(jobs) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                if not job.cancelled:  # abandoned while it waited: never started
                    groups.setdefault(job.key(), []).append(job)
            for group in groups.values():
                await loop.run_in_executor(self.executor, self._generate, group, loop)

    def _generate(self, jobs: list[Job], loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: one batch; events are handed to the loop thread-safely."""

        def emit(job: Job, event: tuple) -> None:
            loop.call_soon_threadsafe(job.events.put_nowait, event)

        try:
            self.batches += 1
            raw = [
                self.model.raw_tokens(
                    [j.prompt_ids], j.budget, j.budget_positions, suffix_ids=[j.suffix_ids]
                )
                for j in jobs
            ]
            batch = self.model.compress_ids(
                [j.prompt_ids for j in jobs],
                [j.suffix_ids for j in jobs],
                raw=[r[0] if r is not None else None for r in raw],
            )
            limits = [j.sampling.max_new_tokens for j in jobs]
            base = jobs[0].sampling
            cfg = SamplingConfig(
                max_new_tokens=max(limits),
                do_sample=base.do_sample,
                temperature=base.temperature,
                top_k=base.top_k,
                top_p=base.top_p,
                seed=base.seed,
            )
            eos = self.model.tokenizer.eos_token_id
            finished = [False] * len(jobs)
            counts = [0] * len(jobs)

            def on_step(tokens: list[int]) -> bool:
                for i, (job, tok) in enumerate(zip(jobs, tokens)):
                    if not finished[i] and job.cancelled:
                        finished[i] = True  # nobody reads it any more
                    if finished[i]:
                        continue
                    if eos is not None and tok == eos:
                        finished[i] = True
                        emit(job, ("done", "stop"))
                        continue
                    counts[i] += 1
                    emit(job, ("token", tok))
                    if counts[i] >= limits[i]:
                        finished[i] = True
                        emit(job, ("done", "length"))
                return not all(finished)  # False: the batch stops, freeing the worker

            for i, job in enumerate(jobs):
                job.tokens_in, job.tokens_out = batch.tokens_in[i], batch.tokens_out[i]
            self.model.generate_ids(batch, cfg, on_step=on_step)
            for i, job in enumerate(jobs):
                if not finished[i]:
                    emit(job, ("done", "length"))
        except Exception as e:  # a failing batch must not kill the server
            for job in jobs:
                emit(job, ("error", f"generation failed: {e}"))
