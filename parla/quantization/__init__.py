"""Calibration sets and INT8 quantization (NNCF, onnxruntime, LiteRT)."""
