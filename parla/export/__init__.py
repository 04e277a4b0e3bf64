"""The format table and one exporter per format, with parity reports against the FP32 reference."""
