"""A project's maintenance task for the Celery fault tests: it commits a row, then, on tenant c1, kills its own worker.

Loaded by name (PORTAL_TASK_MODULES=tests.fleet.dying_task) in the command and in the workers.
"""

import os
import signal
import uuid

from sqlalchemy import text

from tenants.fleet.tasks import register_task


@register_task("mark-then-die", transactional=False)
def mark_then_die(conn, storage, params):  # type: ignore[no-untyped-def]
    """Insert one role named marked-..., committed at once; then, on c1, SIGKILL this worker process."""
    conn.execute(text("INSERT INTO roles (id, name, description) SELECT coalesce(max(id), 0) + 1, :name, '' "
                      "FROM roles"), {"name": f"marked-{uuid.uuid4().hex}"})
    if conn.in_transaction():
        conn.commit()
    if storage.slug == "c1":
        os.kill(os.getpid(), signal.SIGKILL)
    return "marked"
