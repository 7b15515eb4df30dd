"""Exports that grow with the data (the batch record's BatchML, the audit trail), built by
the job worker (``exports.build``) rather than in the request that asks for them."""
