"""The project's Celery app: broker, result backend and queue from the environment.

    celery -A tenants.fleet.celery.app worker --loglevel INFO      # or: python manage.py worker

Settings (environment): CELERY_BROKER_URL and CELERY_RESULT_BACKEND (default
redis://127.0.0.1:6379/0), CELERY_QUEUE (default tenant-portal), CELERY_VISIBILITY_TIMEOUT
(seconds a delivered but unacknowledged task waits before Redis hands it to another worker,
default 3600: keep it longer than your slowest tenant), CELERY_RESTORE_INTERVAL (how often a
worker looks for such tasks, default 10 s). Workers read DATABASE_URL and PORTAL_* like every
command: they must point at the same control plane as the command that dispatches the run.

Tasks are acknowledged late and rejected (so re-queued) when their worker process dies; a
worker reserves one task per process, so a dead worker takes at most its running tasks with it.
"""

import os

from celery import Celery

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "tenant-portal"


def make_app() -> Celery:
    """Build the Celery app from the environment."""
    broker = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER
    restore_every = float(os.environ.get("CELERY_RESTORE_INTERVAL") or 10)
    celery = Celery("tenant_portal", broker=broker, include=["tenants.fleet.celery.tasks", "tenants.fleet.celery.beat"])
    celery.conf.update(
        result_backend=os.environ.get("CELERY_RESULT_BACKEND") or DEFAULT_BROKER,
        task_default_queue=os.environ.get("CELERY_QUEUE") or DEFAULT_QUEUE,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": float(os.environ.get("CELERY_VISIBILITY_TIMEOUT") or 3600),
            "unacked_restore_interval": restore_every, "unacked_restore_throttle": 1,
        },
        result_expires=86400,
        worker_hijack_root_logger=False,
    )
    return celery


app = make_app()
