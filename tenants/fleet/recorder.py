"""Results on their way to the ledger, written in batches across tenants.

Writing each result as it arrives cost the run one control-plane transaction per tenant, on the
runner's critical path (with `--jobs 1` the runner is the worker). A batch goes out once EVERY
seconds have passed since the last write, or when SIZE results wait, and always before the run
is closed. Each tenant's own transaction (its lock, its alembic_version) is untouched by this:
a runner killed between two writes loses at most the results of that interval from the ledger;
the tenants' alembic_version is the truth, and the next run corrects their ledger entries.
"""

import time
from datetime import datetime

from sqlalchemy import Engine

from tenants.core.ledger import TenantResult, record_results


class ResultBuffer:
    """Collect (result, started_at) pairs and write them together."""

    EVERY = 0.5  # seconds: how far the ledger may lag behind the tenants' commits
    SIZE = 500  # results: the most one write carries

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.waiting: list[tuple[TenantResult, datetime]] = []
        self.written_at = time.monotonic()

    def add(self, result: TenantResult, started_at: datetime) -> None:
        """Queue one result."""
        self.waiting.append((result, started_at))

    def due(self) -> bool:
        """Return whether a write is due (enough results, or enough time since the last write)."""
        return bool(self.waiting) and (len(self.waiting) >= self.SIZE
                                       or time.monotonic() - self.written_at >= self.EVERY)

    def flush(self, run_id: str) -> None:
        """Write every queued result now; on failure they stay queued and the error propagates."""
        if self.waiting:
            record_results(self.engine, run_id, self.waiting)
            self.waiting = []
        self.written_at = time.monotonic()

    def drop(self) -> None:
        """Forget the queued results (the control plane is gone)."""
        self.waiting = []
