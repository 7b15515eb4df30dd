"""Background jobs: a queue on one PostgreSQL table, worked by ``opencdmo worker``.

- ``opencdmo.db.jobs.enqueue`` / ``enqueue_for``: in the transaction of the command that
  asks, so the job commits or rolls back with the command's data.
- ``registry.handler``: a job kind and the function that does it (``tasks``: the project's
  kinds). Each handler is idempotent: a job run twice (its worker killed after the work
  committed, before the job was marked done) does the work once; each handler says how.
- ``worker.Worker``: claims jobs (``FOR UPDATE SKIP LOCKED``: two workers never take one job),
  runs each in its tenant's scope as the person or the system actor who asked, retries a
  failure with exponential backoff, takes again a job whose worker stopped beating.
"""
