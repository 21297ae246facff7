"""The load of the service benchmark, in a process of its own (bench/service.py starts it).

``python bench/service_load.py URL KEY batch SIZE REQUESTS THREADS [now]`` posts REQUESTS Segment
batches of SIZE `track` events to ``URL/v1/batch`` from THREADS threads, each with one keep-alive
connection; the bodies are built before the clock starts. Their timestamp is a fixed day in the
past (so their ``Limit Reached`` events trigger nothing, docs/in-app.md), or the time the bodies
are built with ``now`` (bench/triggers.py: they do). ``... track REQUESTS`` posts REQUESTS
single ``/v1/track`` calls one after the other and times each. Prints one JSON object: events
sent, seconds, events per second, latency percentiles, and the statuses that were not 200.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from base64 import b64encode
from collections import Counter
from urllib.parse import urlsplit

ACCOUNTS = 1_000
EVENTS = ("Report Exported", "Dashboard Viewed", "Seat Added", "Feature Used", "Limit Reached")


STAMP = "2026-12-01T10:00:00.000Z"


def message(tag: str, n: int, stamp: str = STAMP) -> dict[str, object]:
    account = n % ACCOUNTS
    return {
        "type": "track",
        "messageId": f"{tag}-{n}",
        "userId": f"u-{account}-{n % 7}",
        "event": EVENTS[n % len(EVENTS)],
        "properties": {"plan": "team", "count": n % 13, "path": f"/reports/{n % 101}"},
        "context": {"groupId": f"acct-{account}", "library": {"name": "bench", "version": "1"}},
        "timestamp": stamp,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(url: str, key: str, path: str, bodies: list[bytes], threads: int) -> dict[str, object]:
    parts = urlsplit(url)
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Basic " + b64encode(f"{key}:".encode()).decode(),
    }
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    queue = iter(range(len(bodies)))

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        while True:
            with lock:
                i = next(queue, None)
            if i is None:
                break
            start = time.perf_counter()
            conn.request("POST", path, bodies[i], headers)
            response = conn.getresponse()
            response.read()
            took = time.perf_counter() - start
            with lock:
                latencies.append(took)
                statuses[response.status] += 1
        conn.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - started
    return {
        "requests": len(bodies),
        "seconds": seconds,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "not_ok": {str(k): v for k, v in statuses.items() if k != 200},
    }


def main(argv: list[str]) -> None:
    url, key, mode = argv[0], argv[1], argv[2]
    tag = f"{mode}-{time.time_ns()}"
    if mode == "batch":
        size, requests, threads = int(argv[3]), int(argv[4]), int(argv[5])
        stamp = STAMP
        if argv[6:] == ["now"]:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        bodies = [
            json.dumps({"batch": [message(tag, r * size + i, stamp) for i in range(size)]}).encode()
            for r in range(requests)
        ]
        result = run(url, key, "/v1/batch", bodies, threads)
        result["events"] = size * requests
    else:
        requests = int(argv[3])
        bodies = [json.dumps(message(tag, r)).encode() for r in range(requests)]
        result = run(url, key, "/v1/track", bodies, 1)
        result["events"] = requests
    result["events_per_second"] = result["events"] / result["seconds"]  # type: ignore[operator]
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
