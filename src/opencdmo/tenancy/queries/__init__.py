"""Tenancy data access, one module per concern: ``tenants`` (tenants and sites), ``members``
(memberships and role grants) and ``invitations``. Every read and write of the tenancy tables
is here, as typed rows.

Each function runs in the transaction open in its context (a command's unit of work or a
page's read view); none opens or commits one of its own.
"""
