"""Equipment: units of the HUB equipment classes and the capture of their OPC UA signals."""
