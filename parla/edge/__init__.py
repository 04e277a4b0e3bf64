"""The on-device runtime (DESIGN §6): backends that run the exported refiner, and the streaming engine."""
