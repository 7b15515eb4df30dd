"""MESA B2MML / BatchML (V0700) building blocks shared by every BatchML document the system
writes or reads: elements in the B2MML namespace, typed values, a parser that loads nothing
and expands nothing, and validation against the schemas vendored in ``xsd/``."""
