"""Audio front-end: decoding any speech file to 16 kHz mono float32, and the log-mel features."""

from parla.audio.io import SAMPLE_RATE, Resampler, check_audio, iter_audio, load_audio, resample

__all__ = ["SAMPLE_RATE", "Resampler", "check_audio", "iter_audio", "load_audio", "resample"]
