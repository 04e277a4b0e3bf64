"""Package data: the bundled default model (``default/``, located by ``parla.modelfolder``), the demo portrait
and speech (``demo/``), the lip-sync probe and the model card."""
