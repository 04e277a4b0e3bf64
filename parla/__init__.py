"""Parla: one portrait plus speech in, a lip-synced talking face out, offline, on edge hardware.

Importing ``parla`` needs only numpy; every runtime and training stack is imported lazily where it is used.
"""

__version__ = "0.1.0"
