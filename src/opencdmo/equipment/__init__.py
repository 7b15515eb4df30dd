"""Equipment: units of the HUB equipment classes, their logbooks and their use in batches, and
the capture of their OPC UA signals (a simulator to develop and test against)."""
