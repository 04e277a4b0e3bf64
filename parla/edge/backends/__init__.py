"""Backends that run the networks: one small interface (``base.Backend``), one file per runtime, lazy imports.
Which class runs which format comes from the format table (``parla.formats``)."""

from __future__ import annotations

from pathlib import Path

from parla.edge.backends.base import Backend, open_for_config, open_model

__all__ = ["Backend", "open_model", "open_models"]


def open_models(cfg, *, net: str = "student") -> tuple[Backend, Backend]:
    """(refiner, lips net) for a firmware config: its backend, device and precision, with its CPU fallback.

    ``cfg.model``: ``default`` (the bundled model folder), a model folder, or a ``parla export`` folder beside
    which the model folder's files are not needed. The torch backend runs the folder's safetensors (``net``:
    teacher or student); the others its exported files. Every file is sha256-checked against the folder's list
    (a model folder's config.json, an export folder's SHA256SUMS) and refused when it is not on it.
    """
    from parla.formats import FORMATS, by_backend, model_filename
    from parla.modelfolder import ModelFolder

    fmt = by_backend(cfg.backend)
    kw = {"threads": cfg.threads, "fallback_to_cpu": cfg.fallback_to_cpu}
    if fmt.name == "torch":
        folder = ModelFolder(cfg.model)
        refiner = open_for_config(
            folder.path, "torch", cfg.device, kind="refiner", net=net, precision=cfg.precision, **kw
        )
        return refiner, open_for_config(folder.path, "torch", refiner.device, kind="lips", precision="fp32", **kw)
    export_dir = Path(cfg.model)
    names = (model_filename(fmt.name, cfg.precision, "refiner"), model_filename(fmt.name, "fp32", "motion"))
    if cfg.model != "default" and (export_dir / names[0]).is_file():  # a 'parla export' folder
        from parla.modelfolder import export_file

        paths = [export_file(export_dir, n) for n in names]
        for p in paths:
            if p.suffix == ".xml":  # OpenVINO's weights
                export_file(export_dir, p.with_suffix(".bin").name)
    else:
        folder = ModelFolder(cfg.model)
        paths = [folder.edge_model(fmt.name, "refiner", cfg.precision), folder.edge_model(fmt.name, "motion")]
    refiner = open_for_config(paths[0], fmt.backend, cfg.device, delegate=cfg.delegate, **kw)
    try:  # the lips net is FP32: the host CPU everywhere
        lips = open_for_config(paths[1], fmt.backend, FORMATS[fmt.name].cpu_device, threads=cfg.threads)
    except BaseException:
        refiner.close()
        raise
    return refiner, lips
