"""Load from a second process for the durability test: Segment batches, each acknowledgement logged.

Usage: ``python tests/segment_load.py URL WRITE_KEY OUT.jsonl BATCHES SIZE``. Sends BATCHES batches
of SIZE `track` events to ``URL/v1/batch`` one after the other, each with messageIds of its own
(``b<batch>-<i>``); after each 200 it appends ``{"batch": n, "ids": [...]}`` to OUT.jsonl and
fsyncs it, so the file lists exactly the batches the server acknowledged. A batch that fails (the
server was killed) is retried until it is acknowledged or the process is killed.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from base64 import b64encode
from urllib.parse import urlsplit


def body(batch: int, size: int) -> tuple[list[str], bytes]:
    ids = [f"b{batch}-{i}" for i in range(size)]
    messages = [
        {
            "type": "track",
            "messageId": message_id,
            "userId": f"u-{batch % 7}",
            "event": "Report Exported",
            "properties": {"batch": batch, "i": i},
            "context": {"groupId": f"acct-{batch % 5}"},
            "timestamp": "2026-12-01T10:00:00Z",
        }
        for i, message_id in enumerate(ids)
    ]
    return ids, json.dumps({"batch": messages}).encode()


def main(url: str, key: str, out: str, batches: int, size: int) -> None:
    parts = urlsplit(url)
    auth = "Basic " + b64encode(f"{key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    with open(out, "a", encoding="utf-8") as log:
        for n in range(batches):
            ids, payload = body(n, size)
            while True:
                try:
                    conn.request("POST", "/v1/batch", payload, headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    time.sleep(0.05)
                    continue
                if response.status == 200:
                    log.write(json.dumps({"batch": n, "ids": ids}) + "\n")
                    log.flush()
                    os.fsync(log.fileno())
                    break
                raise SystemExit(f"batch {n}: HTTP {response.status}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
