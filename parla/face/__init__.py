"""Face front-end: detection, 68-point landmarks, canonical alignment, inverse transform, paste-back."""
