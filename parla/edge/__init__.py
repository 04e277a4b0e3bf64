"""The on-device runtime: backends, streaming engine, sources, sinks, camera, watermark."""
