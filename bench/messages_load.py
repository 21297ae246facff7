"""The load of the messages benchmark, in a process of its own (bench/messages.py starts it).

``python bench/messages_load.py seed DATABASE_URL USERS`` stores USERS accounts of one user each
(``u-N`` of ``acct-N``) and queues an in-app banner for four in five of them, as `upsell run`
records it (the other fifth get 204).

``python bench/messages_load.py get URL KEY RATE SECONDS THREADS USERS`` asks ``GET /v1/messages``
for random users at a steady RATE requests per second for SECONDS, from THREADS threads with one
keep-alive connection each. The schedule is open-loop: each request has its due time, and its
latency is measured from that time, so that a stalled server shows in the percentiles instead of
slowing the load down. Prints one JSON object: requests, achieved rate, latency percentiles,
statuses.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit


def seed(database_url: str, users: int) -> None:
    import sqlalchemy as sa

    from upsell.domain.calendar import iso
    from upsell.domain.contacts import Contact
    from upsell.store.contacts import record_contact
    from upsell.store.db import connect
    from upsell.store.schema import users as users_table

    db = connect(database_url)
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(
            sa.insert(users_table),
            [
                {
                    "account_id": f"acct-{n}",
                    "user_id": f"u-{n}",
                    "first_seen": now,
                    "last_seen": now,
                }
                for n in range(users)
            ],
        )
        for n in range(users):
            if n % 5 == 4:
                continue
            message = {"locale": "en", "subject": "Your team has outgrown Basic",
                       "body": f"You use {n % 10 + 1} of 10 seats.", "cta": "Upgrade",
                       "cta_url": "https://app.example.com/billing", "html": None,
                       "expires_at": iso(now + timedelta(days=14))}  # fmt: skip
            record_contact(
                conn=conn,
                contact=Contact(
                    account_id=f"acct-{n}", as_of=now - timedelta(hours=1), kind="upsell",
                    offer_id="upsell:basic->pro", item_id="pro", channel="in_app",
                    placement="banner", message=message,
                    decision={"price": "49.00", "price_currency": "USD",
                              "expected_mrr_delta": "30.00", "currency": "USD", "trial_days": 14},
                ),
            )  # fmt: skip
    db.dispose()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def get(url: str, key: str, rate: float, seconds: float, threads: int, users: int) -> None:
    parts = urlsplit(url)
    total = int(rate * seconds)
    rng = random.Random(7)
    paths = [f"/v1/messages?key={key}&userId=u-{rng.randrange(users)}" for _ in range(total)]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        mine: list[float] = []
        seen: Counter[int] = Counter()
        for i in range(k, total, threads):
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            conn.request("GET", paths[i])
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - due)
            seen[response.status] += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    took = time.perf_counter() - start
    print(
        json.dumps(
            {
                "requests": total,
                "seconds": took,
                "rate": total / took,
                "p50_ms": _percentile(latencies, 0.50) * 1000,
                "p90_ms": _percentile(latencies, 0.90) * 1000,
                "p99_ms": _percentile(latencies, 0.99) * 1000,
                "max_ms": max(latencies) * 1000,
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
            }
        )
    )


def main(argv: list[str]) -> None:
    if argv[0] == "seed":
        seed(argv[1], int(argv[2]))
    else:
        get(argv[1], argv[2], float(argv[3]), float(argv[4]), int(argv[5]), int(argv[6]))


if __name__ == "__main__":
    main(sys.argv[1:])
