"""Micro-batching for ``stackgan serve``: concurrent requests, one generator call.

Requests wait in a bounded queue; one worker thread (off the event loop) takes the oldest,
gathers the next requests for the same model until the batch holds ``max_batch`` images or
``max_wait_s`` has passed, and makes one call of the public sampling API for all of them.
A full queue refuses a request at once (:class:`QueueFullError`, an HTTP 503 with ``Retry-After``),
so memory stays bounded whatever the load: at most ``queue_size`` waiting requests of at most
``max_images`` images each, plus the batch being made.

Reproducibility: each request's captions are encoded on their own (batch composition changes
a sentence embedding at 1e-7) and its noise is drawn from its own seed with
:meth:`Text2ImageSampler.noise` (the library's one noise rule, caption i from ``seed + i``),
exactly what ``sampler(captions, seed=seed, num_images=k)`` draws; only the generator call is
shared. The generator's arithmetic itself is not batch invariant on every backend (MKL's GEMM
and PyTorch's convolution pick different kernels for different batch sizes), so inside a mixed
batch a pixel can differ by one 8-bit level from the request made alone; ``max_batch=1`` gives
the library's images bit for bit (see docs/serving.md).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stackgan.sampling import Text2ImageSampler
from stackgan.text import TextEncoderError

logger = logging.getLogger(__name__)

RETRY_AFTER_MAX_S = 60


class QueueFullError(RuntimeError):
    """The request queue is full: come back in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy (queue full); retry in {retry_after} s")
        self.retry_after = retry_after


class StoppedError(RuntimeError):
    """The batcher is not running (starting up or shutting down)."""


@dataclass(frozen=True)
class GenRequest:
    """One request's part of a batch.

    Attributes:
        captions: the captions, already validated; None for an unconditional model.
        num_images: images per caption (in all, for an unconditional model).
        seed: seeds this request's z and Conditioning Augmentation noise.
    """

    captions: list[str] | None
    num_images: int
    seed: int

    @property
    def size(self) -> int:
        """Images this request makes."""
        return len(self.captions) * self.num_images if self.captions else self.num_images


@dataclass
class GenResult:
    """A request's images: ``images`` (n, S, S, 3) uint8, caption-major (``num_images``
    consecutive images per caption), and ``stage_images``, one such array per stage, lowest
    resolution first."""

    images: np.ndarray
    stage_images: list[np.ndarray]


def generate_batch(sampler: Text2ImageSampler, requests: Sequence[GenRequest]) -> list[GenResult]:
    """Make the images of several requests with one generator call, each as if made alone.

    Each request's captions are encoded on their own and its noise is drawn from its own seed
    (:meth:`Text2ImageSampler.noise`); embeddings (each caption's row repeated ``num_images``
    times), z and the CA noise are concatenated across requests for a single call of the
    sampler. Raises what the sampler raises (e.g. ``TextEncoderError`` for a bad caption).

    Args:
        sampler: the loaded model.
        requests: the requests of the batch, in order.

    Returns:
        One :class:`GenResult` per request, in order.
    """
    zs: list[torch.Tensor] = []
    eps: list[torch.Tensor] = []
    embs: list[torch.Tensor] = []
    for r in requests:
        z, e = sampler.noise(len(r.captions) if r.captions else 1, r.seed, r.num_images)
        zs.append(z)
        eps.append(e)
        if sampler.conditional:
            if not r.captions:
                raise ValueError("this model is text-conditioned: give captions")
            embs.append(sampler.encode_text(r.captions).repeat_interleave(r.num_images, dim=0))
        elif r.captions:
            raise ValueError("this model is unconditional: it takes no captions")
    total = sum(r.size for r in requests)
    # the sampler's own chunking (SAMPLE_CHUNK rows per generator run) is kept: a request alone
    # is then computed exactly as `sampler(captions, seed=..., num_images=...)` computes it
    if sampler.conditional:
        out = sampler(
            None,
            num_images=1,
            text_emb=torch.cat(embs),
            latents=torch.cat(zs),
            ca_noise=torch.cat(eps),
            output_type="np",
        )
    else:
        out = sampler(None, num_images=total, latents=torch.cat(zs), output_type="np")
    results = []
    start = 0
    for r in requests:
        end = start + r.size
        stages = [s[start:end] for s in out.stage_images]
        results.append(GenResult(images=stages[-1], stage_images=stages))
        start = end
    return results


@dataclass
class Job:
    """A queued request: what to make, for which model, and where the result goes."""

    model: str
    request: GenRequest
    future: concurrent.futures.Future[BatchOutcome] = field(
        default_factory=concurrent.futures.Future
    )
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchOutcome:
    """What a job gets back: its images and how they were made."""

    result: GenResult
    batch_images: int  # images in the generator call that made this request's
    batch_requests: int  # requests in that call
    queue_s: float  # waiting in the queue
    generate_s: float  # the batch's encode + generate time


class Counters:
    """Thread-safe serving counters (read by ``/healthz`` and ``/metrics``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests = 0
        self.images = 0
        self.batches = 0
        self.batch_images = 0
        self.rejected = 0  # 503s for a full queue
        self.abandoned = 0  # requests whose client left before their images were ready
        self.skipped = 0  # of those, requests dropped before generation (none of their images made)
        self.by_status: collections.Counter[int] = collections.Counter()

    def count_response(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            self.by_status[status] += 1

    def count_batch(self, images: int) -> None:
        with self._lock:
            self.batches += 1
            self.batch_images += images

    def count_images(self, images: int) -> None:
        with self._lock:
            self.images += images

    def count_rejected(self) -> None:
        with self._lock:
            self.rejected += 1

    def count_abandoned(self) -> None:
        with self._lock:
            self.abandoned += 1

    def count_skipped(self, jobs: int) -> None:
        with self._lock:
            self.skipped += jobs

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready values."""
        with self._lock:
            errors = {str(k): v for k, v in sorted(self.by_status.items()) if k >= 400}
            return {
                "uptime_s": round(time.time() - self.started, 3),
                "requests": self.requests,
                "images": self.images,
                "batches": self.batches,
                "batch_images": self.batch_images,
                "mean_batch_images": (
                    round(self.batch_images / self.batches, 3) if self.batches else 0.0
                ),
                "rejected_503": self.rejected,
                "abandoned": self.abandoned,
                "skipped_before_generation": self.skipped,
                "errors_by_status": errors,
                "responses_by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            }


class MicroBatcher:
    """A bounded request queue and the worker thread that serves it in batches.

    Args:
        samplers: the loaded models by name.
        max_batch: most images in one sampler call (a single larger request runs alone); the
            sampler itself runs its generator on at most ``SAMPLE_CHUNK`` (32) rows at a time.
        max_wait_s: how long the oldest request waits for others to join its batch (not when
            the server is quiet: the last batch was one request and nothing else waits).
        queue_size: most requests waiting; beyond it :meth:`submit` raises :class:`QueueFullError`.
        counters: where batches are counted.
    """

    def __init__(
        self,
        samplers: Mapping[str, Text2ImageSampler],
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        queue_size: int = 64,
        counters: Counters | None = None,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_s < 0:
            raise ValueError("max_batch and queue_size must be >= 1 and max_wait_s >= 0")
        self.samplers = dict(samplers)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.counters = counters or Counters()
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._paused = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy_images = 0  # images of the batch being made
        self._s_per_image = 0.05  # running estimate, for Retry-After
        self._last_requests = 0  # requests in the last batch

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="stackgan-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch being made, fail the waiting requests with :class:`StoppedError`."""
        with self._cond:
            self._stopping = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(StoppedError("the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout)

    def pause(self) -> None:
        """Stop taking new batches (requests still queue, up to the limit): maintenance, tests."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        """Take batches again after :meth:`pause`."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    @property
    def depth(self) -> int:
        """Requests waiting (not counting the batch being made)."""
        with self._cond:
            return len(self._queue)

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, model: str, request: GenRequest) -> concurrent.futures.Future[BatchOutcome]:
        """Queue a request; never blocks.

        Raises:
            KeyError: unknown model.
            QueueFullError: the queue holds ``queue_size`` requests.
            StoppedError: the worker is not running.
        """
        if model not in self.samplers:
            raise KeyError(model)
        job = Job(model, request)
        with self._cond:
            if self._stopping or self._thread is None:
                raise StoppedError("the server is not running")
            if len(self._queue) >= self.queue_size:
                self._drop_cancelled()
            if len(self._queue) >= self.queue_size:
                waiting = sum(j.request.size for j in self._queue) + self._busy_images
                retry = math.ceil(waiting * self._s_per_image)
                self.counters.count_rejected()
                raise QueueFullError(min(max(retry, 1), RETRY_AFTER_MAX_S))
            self._queue.append(job)
            self._cond.notify_all()
        return job.future

    # -- the worker -----------------------------------------------------------------------------

    def _drop_cancelled(self) -> None:
        """Take the jobs whose client went away out of the queue (the lock is held): they
        neither hold a place nor count in a batch's size."""
        live = [j for j in self._queue if not j.future.cancelled()]
        if len(live) < len(self._queue):
            self.counters.count_skipped(len(self._queue) - len(live))
            self._queue = collections.deque(live)

    def _select(self) -> tuple[list[Job], int]:
        """The jobs the next batch would take: the oldest, then later jobs for the same model
        while they fit in ``max_batch`` images (first come, first served per model)."""
        head = self._queue[0]
        jobs, size = [head], head.request.size
        for job in list(self._queue)[1:]:
            if job.model == head.model and size + job.request.size <= self.max_batch:
                jobs.append(job)
                size += job.request.size
                if size == self.max_batch:
                    break
        return jobs, size

    def _take(self) -> list[Job]:
        """Block until a batch is ready (full, or the oldest job waited ``max_wait_s``)."""
        with self._cond:
            while (not self._queue or self._paused) and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return []
            self._drop_cancelled()
            if not self._queue:
                return []
            # Wait for company only when requests have been coming together: a lone request on
            # a quiet server (the last batch was one request, nothing else queued) would wait
            # max_wait_s for nothing.
            quiet = len(self._queue) == 1 and self._last_requests <= 1
            deadline = time.perf_counter() + (0.0 if quiet else self.max_wait_s)
            while True:
                self._drop_cancelled()
                if self._stopping or not self._queue:  # stop() emptied the queue meanwhile
                    return []
                jobs, size = self._select()
                left = deadline - time.perf_counter()
                if size >= self.max_batch or left <= 0 or self._stopping:
                    break
                self._cond.wait(left)
            for job in jobs:
                self._queue.remove(job)
            self._busy_images = size
            self._last_requests = len(jobs)
        # a client that went away meanwhile cancelled its future: skip its work
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if len(live) < len(jobs):
            self.counters.count_skipped(len(jobs) - len(live))
        return live

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                with self._cond:
                    if self._stopping:
                        return
                continue
            self._make(jobs)
            with self._cond:
                self._busy_images = 0

    def _make(self, jobs: list[Job]) -> None:
        """Run one batch and hand each job its images (or its error)."""
        sampler = self.samplers[jobs[0].model]
        t0 = time.perf_counter()
        try:
            results = generate_batch(sampler, [j.request for j in jobs])
        except Exception as exc:
            if len(jobs) > 1:  # find the culprit: a request that fails, fails alone
                for job in jobs:
                    self._make([job])
                return
            if not isinstance(exc, TextEncoderError):  # else the request's own fault (a 4xx)
                logger.exception("generation failed")
            jobs[0].future.set_exception(exc)
            return
        dt = time.perf_counter() - t0
        size = sum(j.request.size for j in jobs)
        self._s_per_image = 0.8 * self._s_per_image + 0.2 * dt / size
        self.counters.count_batch(size)
        logger.debug("batch: %d requests, %d images, %.1f ms", len(jobs), size, dt * 1000)
        for job, res in zip(jobs, results):
            job.future.set_result(
                BatchOutcome(
                    result=res,
                    batch_images=size,
                    batch_requests=len(jobs),
                    queue_s=t0 - job.enqueued,
                    generate_s=dt,
                )
            )
