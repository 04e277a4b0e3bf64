"""File I/O shared by training and runtime: images, videos with audio, atomic writes."""
