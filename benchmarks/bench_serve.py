"""Load test of ``stackgan serve``: throughput and latency under concurrent clients.

Starts real server subprocesses on 127.0.0.1 (a free port each; nothing else is contacted) and
drives them with N client threads, each sending one request at a time (one caption, one image,
a fixed caption list and seed per request index) over a kept-alive HTTP connection. Bounded:
a fixed number of requests per level and a time limit per level.

1. micro-batching (``--max-batch``, default 32) at 1, 4 and 16 clients;
2. the same with ``--max-batch 1`` (each request its own generator call);
3. overload: a server with a tiny queue under a burst of clients: every answer must be a 200 or
   a clean 503 (JSON, ``Retry-After``), no other 5xx, and the server healthy afterwards.

It prints images/s and p50/p95/p99 latency per level, and the batched / unbatched ratio.

Usage::

    python benchmarks/bench_serve.py                      # the full run (about 30 s)
    python benchmarks/bench_serve.py --quick              # a few dozen requests (seconds)
    python benchmarks/bench_serve.py --requests 96 --concurrency 1,4,16 --json out.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # the only address this script talks to
CAPTIONS = [
    "a big red star on a sky blue background",
    "a tiny violet circle on the left, on a beige background",
    "there is a small green square at the top",
    "a large yellow diamond in the center on a black background",
    "the triangle is orange and small and sits on the right",
    "a white star with blue dots near the bottom edge",
]
START_TIMEOUT_S = 90


@dataclass
class LevelResult:
    """One load level: what was sent, what came back, how fast."""

    label: str
    concurrency: int
    requests: int = 0
    ok: int = 0
    rejected_503: int = 0
    other_5xx: int = 0
    other: int = 0  # any other status (or a dropped connection)
    clean_503: bool = True  # every 503 had Retry-After and a JSON error
    images: int = 0
    mean_batch: float = 0.0  # images per generator call on the server during this level
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s if self.wall_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile of the successful requests, in ms (nearest rank)."""
        xs = sorted(self.latencies_ms)
        if not xs:
            return float("nan")
        k = min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))
        return xs[k]

    def summary(self) -> dict[str, object]:
        d = asdict(self)
        del d["latencies_ms"]
        d.update(
            images_per_s=round(self.images_per_s, 2),
            p50_ms=round(self.percentile(50), 1),
            p95_ms=round(self.percentile(95), 1),
            p99_ms=round(self.percentile(99), 1),
        )
        return d


@contextmanager
def server(
    *args: str, log: Path | None = None, python: str = sys.executable
) -> Iterator[tuple[str, Path]]:
    """Run ``stackgan serve --port 0 ARGS`` on 127.0.0.1; yield (base URL, its log file).

    The server is terminated (then killed) on exit, whatever happens."""
    tmp = None
    if log is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-serve-")
        log = Path(tmp.name) / "server.log"
    cmd = [python, "-m", "stackgan", "serve", "--host", HOST, "--port", "0", *args]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        url = wait_for_url(proc, log)
        wait_ready(url)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if tmp is not None:
            tmp.cleanup()


def wait_for_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The URL the server prints once its socket listens."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
        if m:
            return m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{text[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"the server did not start in {START_TIMEOUT_S} s")


def request(
    url: str,
    method: str,
    path: str,
    body: object | None = None,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = 60,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the server at ``url`` (127.0.0.1 only): (status, headers, body)."""
    host, port = url.removeprefix("http://").split(":")
    if host != HOST:
        raise ValueError(f"refusing to send traffic to {host}: this benchmark is local only")
    own = conn is None
    c = conn or http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if own:
            c.close()


def wait_ready(url: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request(url, "GET", "/readyz", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} was not ready in {timeout} s")


def run_level(
    url: str,
    concurrency: int,
    num_requests: int,
    time_limit_s: float = 60,
    label: str = "",
    images_per_request: int = 1,
) -> LevelResult:
    """``concurrency`` client threads send ``num_requests`` requests in all (fewer if the time
    limit passes first), one at a time each; a 503 is counted, not retried."""
    res = LevelResult(label or f"{concurrency} clients", concurrency)
    lock = threading.Lock()
    counter = iter(range(num_requests))
    deadline = time.monotonic() + time_limit_s

    def client() -> None:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=max(time_limit_s, 30))
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = {
                    "captions": [CAPTIONS[i % len(CAPTIONS)]],
                    "seed": i,
                    "num_images": images_per_request,
                }
                t0 = time.perf_counter()
                try:
                    status, headers, data = request(url, "POST", "/v1/images", body, conn)
                except (OSError, http.client.HTTPException):
                    status, headers, data = 0, {}, b""
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=60)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    res.requests += 1
                    if status == 200:
                        res.ok += 1
                        res.images += images_per_request
                        res.latencies_ms.append(ms)
                    elif status == 503:
                        res.rejected_503 += 1
                        res.clean_503 &= "retry-after" in headers and _is_json_error(data)
                    elif status >= 500:
                        res.other_5xx += 1
                    else:
                        res.other += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.wall_s = time.perf_counter() - t0
    return res


def _is_json_error(data: bytes) -> bool:
    try:
        return "error" in json.loads(data)
    except ValueError:
        return False


def healthz(url: str) -> dict[str, Any]:
    status, _, data = request(url, "GET", "/healthz")
    if status != 200:
        raise RuntimeError(f"/healthz answered {status}")
    out: dict[str, Any] = json.loads(data)
    return out


def measured_level(
    url: str, concurrency: int, num_requests: int, time_limit_s: float, label: str = ""
) -> LevelResult:
    """:func:`run_level`, with the server's mean batch size over the level (from /healthz)."""
    before = healthz(url)["counters"]
    res = run_level(url, concurrency, num_requests, time_limit_s, label)
    after = healthz(url)["counters"]
    batches = after["batches"] - before["batches"]
    if batches:
        res.mean_batch = (after["batch_images"] - before["batch_images"]) / batches
    return res


def print_table(rows: Sequence[LevelResult]) -> None:
    head = (
        f"{'server':<18} {'clients':>7} {'req':>5} {'200':>5} {'503':>5} {'5xx':>4} "
        f"{'batch':>6} {'img/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.label:<18} {r.concurrency:>7} {r.requests:>5} {r.ok:>5} {r.rejected_503:>5} "
            f"{r.other_5xx:>4} {r.mean_batch:>6.1f} {r.images_per_s:>7.2f} "
            f"{r.percentile(50):>8.1f} {r.percentile(95):>8.1f} {r.percentile(99):>8.1f}"
        )


def overload(
    url: str, clients: int, num_requests: int, time_limit_s: float
) -> tuple[LevelResult, dict[str, Any]]:
    """A burst of ``clients`` against a small queue: (what came back, /healthz afterwards)."""
    res = measured_level(url, clients, num_requests, time_limit_s, "overload, queue 4")
    return res, healthz(url)


def exactness(trials: int, min_batch: int = 16, seed: int = 0) -> dict[str, Any]:
    """In process, no server: requests made together in mixed batches of ``min_batch``+ images
    against each made alone (which is the library's ``sampler(captions, seed, k)``, bit for
    bit): how many came out identical, and how many 8-bit values differ, by how much."""
    import random

    import numpy as np

    from stackgan.sampling import Text2ImageSampler
    from stackgan.serve import GenRequest, generate_batch

    sampler = Text2ImageSampler.from_pretrained()
    rng = random.Random(seed)
    n_req = identical = values = differing = 0
    worst = 0
    for _ in range(trials):
        reqs: list[GenRequest] = []
        while sum(r.size for r in reqs) < min_batch:
            caps = rng.sample(CAPTIONS, rng.choice([1, 1, 2]))
            reqs.append(GenRequest(caps, rng.choice([1, 1, 2]), rng.randrange(10**6)))
        together = generate_batch(sampler, reqs)
        for req, got in zip(reqs, together):
            (alone,) = generate_batch(sampler, [req])
            same = True
            for a, b in zip(got.stage_images, alone.stage_images):
                d = np.abs(a.astype(np.int16) - b)
                values += d.size
                differing += int((d > 0).sum())
                worst = max(worst, int(d.max()))
                same &= bool((d == 0).all())
            n_req += 1
            identical += same
    return {
        "requests": n_req,
        "identical": identical,
        "differing_values": differing,
        "values": values,
        "max_difference": worst,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few dozen requests (seconds)")
    p.add_argument("--requests", type=int, default=64, help="requests per level")
    p.add_argument("--concurrency", default="1,4,16", help="client counts, comma-separated")
    p.add_argument("--max-batch", type=int, default=32, help="the micro-batching server's")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--time-limit", type=float, default=30.0, help="seconds per level at most")
    p.add_argument(
        "--exactness", type=int, default=6, help="mixed batches to compare with requests alone"
    )
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    n = 24 if args.quick else args.requests
    if args.quick:
        levels = [1, 4]
    rows: list[LevelResult] = []
    t_start = time.perf_counter()
    common = ["--max-wait-ms", str(args.max_wait_ms), "--queue-size", "64"]
    for max_batch in (args.max_batch, 1):
        with server("--max-batch", str(max_batch), *common) as (url, _):
            for c in levels:
                rows.append(measured_level(url, c, n, args.time_limit, f"max-batch {max_batch}"))
    burst = 16 if args.quick else 48
    with server("--max-batch", "8", "--queue-size", "4") as (url, _):
        over, health = overload(url, burst, 2 * burst, args.time_limit)
    rows.append(over)
    print(f"stackgan serve load test: {os.cpu_count()} CPUs, {time.perf_counter() - t_start:.0f} s")
    print_table(rows)
    by = {(r.label, r.concurrency): r for r in rows}
    for c in levels:
        a, b = by.get((f"max-batch {args.max_batch}", c)), by.get(("max-batch 1", c))
        if a and b and b.images_per_s > 0:
            print(
                f"{c:>3} clients: micro-batching {a.images_per_s:.2f} img/s vs batch size 1 "
                f"{b.images_per_s:.2f} img/s: ratio {a.images_per_s / b.images_per_s:.2f}"
            )
    errors = sum(r.other_5xx for r in rows)
    clean = all(r.clean_503 for r in rows)
    print(
        f"overload: {over.ok} x 200, {over.rejected_503} x 503 (all with Retry-After and a JSON "
        f"error: {clean}), other 5xx in the whole run: {errors}; healthy after: "
        f"{health['status'] == 'ok'}"
    )
    exact: dict[str, Any] = {}
    if args.exactness and not args.quick:
        exact = exactness(args.exactness)
        print(
            f"exactness: {exact['identical']} of {exact['requests']} requests made in mixed "
            f"batches identical to the request alone; {exact['differing_values']} of "
            f"{exact['values']} 8-bit values differ "
            f"({exact['differing_values'] / exact['values']:.1e}), by at most "
            f"{exact['max_difference']}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"levels": [r.summary() for r in rows], "healthz": health, "exactness": exact},
                indent=2,
            )
        )
    ok = errors == 0 and clean and health["status"] == "ok" and over.rejected_503 > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
