"""Calibration data selection (``calibration``) and the INT8 quantizers of every format (``quantizers``)."""
