"""Each person's work: the queues of things that await them, gathered from every context for
the dashboard, the ``/work`` API and the notification count in the top bar.

The registry
------------
A queue is declared by a ``QueueProvider`` (``opencdmo.work.registry``): a key, a title, the
permission (object, action) a member needs to act on its items, the text shown when it is
empty, its rank on the dashboard, whether its items await the person's own action (those
count in the notification count), and ``fetch(ctx, limit)``, which returns the first
``limit`` items and the size of the whole queue.

Contexts contribute their queues in ``opencdmo/work/queues/<context>.py``: a module there
that defines ``QUEUES`` (a tuple of providers) is found by itself, so nothing else lists
them. A provider's ``fetch`` calls its context's service (the queue's data access stays in
the context that owns the tables) and turns the typed rows into ``QueueItem`` (label, link,
when, who, note). Today: ``recipes`` (awaiting my signature, returned to me, my drafts,
recently effective) and ``library`` (updates available for installed items). Later contexts
add theirs the same way (batches to run, lots to release, exceptions to review):

    # opencdmo/work/queues/batches.py
    QUEUES = (
        QueueProvider(
            key="batches_to_run",
            title="Batches to run",
            permission=("batches", "execute"),
            empty="No batch is scheduled for you.",
            rank=15,
            action=True,
            fetch=_batches_to_run,
        ),
    )

Rules for a fetch: one query (indexed, with the queue's total counted in the same query),
in the transaction open in the context (the page's read view: it joins it), filtered to
the person where the queue is personal, and never wider than what the member may act on
(the registry shows a queue only to members with its permission; the query applies the
rest, such as separation of duties).

Notifications
-------------
The queues awaiting a person's own action are also mailed to them: ``notify`` (the
``work.notify`` job) reads them as each member and mails the items not mailed before, which
``sent`` records in ``notifications_sent`` (``tables``); ``mail`` hands the digest to the
SMTP server.
"""
