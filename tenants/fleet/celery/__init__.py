"""Fleet runs executed by Celery workers: the app, its tasks, the slot relay and dispatch."""
