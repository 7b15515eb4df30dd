"""The work queues each context contributes: one module per context, each defining
``QUEUES`` (found by ``opencdmo.work.registry.providers``)."""
