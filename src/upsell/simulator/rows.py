"""The world's subscription rows: one per period an item was held, column by column.

The rows are numpy arrays that grow as items start (``end`` is -1 while the item is held); times are
microseconds since the epoch and statuses are numbers, `STATUSES`' positions. The output tables
(tables.py) turn them into data-contract.md's subscription rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from upsell.domain.subscriptions import STATUSES

I64 = npt.NDArray[np.int64]

#: Statuses by number, in `STATUSES`' order: what the world's row arrays hold.
TRIALING, ACTIVE, PAST_DUE, CANCELED = (
    STATUSES.index(s) for s in ("trialing", "active", "past_due", "canceled")
)


class Rows:
    """Subscription rows, column by column (growable arrays; ``end`` -1 while the item is held)."""

    def __init__(self) -> None:
        self.n = 0
        cap = 1024
        self.account = np.zeros(cap, np.int64)
        self.item = np.zeros(cap, np.int64)
        self.start = np.zeros(cap, np.int64)
        self.end = np.full(cap, -1, np.int64)
        self.interval = np.zeros(cap, np.int64)
        self.status = np.zeros(cap, np.int64)
        self.changed_day = np.zeros(cap, np.int64)

    def _grow(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.account):
            return
        cap = max(need, 2 * len(self.account))
        for name in ("account", "item", "start", "end", "interval", "status", "changed_day"):
            old = getattr(self, name)
            new = np.full(cap, -1 if name == "end" else 0, np.int64)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def add(
        self, account: I64, item: int | I64, start: I64, interval: I64, status: int, day: int
    ) -> I64:
        k = len(account)
        self._grow(k)
        rows = np.arange(self.n, self.n + k, dtype=np.int64)
        self.account[rows], self.item[rows], self.start[rows] = account, item, start
        self.end[rows], self.interval[rows], self.status[rows] = -1, interval, status
        self.changed_day[rows] = day
        self.n += k
        return rows

    def close(self, rows: I64, at: I64, day: int, status: int | None = None) -> None:
        rows = np.asarray(rows, np.int64)
        keep = rows >= 0
        rows, at = rows[keep], np.broadcast_to(at, keep.shape)[keep]
        self.end[rows] = at
        self.changed_day[rows] = day
        if status is not None:
            self.status[rows] = status
