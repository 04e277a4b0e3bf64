"""`parla export`: a refiner checkpoint -> ONNX / OpenVINO / TFLite files at the asked precisions, each checked
against the FP32 PyTorch reference (``parity.json`` + ``parity.md`` in the output folder)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parla.errors import ModelNotFoundError, OutputPathError, ParlaError
from parla.files import check_output, write_text_atomic
from parla.formats import EXPORTABLE, FORMATS, check
from parla.quantization import calibration as S

CALIB_VIDEOS = S.SHARED / "train" / "videos"
PARITY_VIDEOS = S.SHARED / "eval" / "videos"


@dataclass
class Checkpoint:
    module: Any  # the EdgeRefiner (torch, eval mode, FP32)
    cfg: Any  # RefinerConfig
    version: str
    basis: Any | None  # ExpressionBasis, for synthetic parity frames
    motion: tuple | None = None  # (LipNet, LipNetConfig, (mel_mean, mel_std), version) of a model folder


def load_checkpoint(spec: str | Path) -> Checkpoint:
    """``default`` (the bundled student), a model folder with a student, or a teacher/student run folder."""
    from parla.face.expression import ExpressionBasis
    from parla.modelfolder import ModelFolder, load_weights
    from parla.models.refiner import Refiner, RefinerConfig, edge_module

    p = Path(spec)
    if str(spec) != "default" and (p / "state.json").is_file():  # a run folder
        state = json.loads((p / "state.json").read_text())
        cfg = RefinerConfig.from_dict(state["refiner"])
        g = Refiner(cfg).eval()
        load_weights(g, p / "refiner.safetensors")
        basis_path = Path(state.get("data", "")) / "basis.npz"
        basis = ExpressionBasis.load(basis_path) if basis_path.is_file() else None
        return Checkpoint(edge_module(g), cfg, f"{state.get('kind', 'teacher')}-step{state['step']}", basis)
    if str(spec) != "default" and not (p / "config.json").is_file():
        raise ModelNotFoundError(f"{spec}: not a model folder or a training run (no config.json or state.json)")
    folder = ModelFolder(spec)
    g, cfg = folder.refiner("student")
    c = folder.config
    lips, lips_cfg = folder.lipnet()
    motion = (
        lips,
        lips_cfg,
        (np.asarray(c["mel_mean"], np.float32), np.asarray(c["mel_std"], np.float32)),
        folder.version(),
    )
    return Checkpoint(edge_module(g), cfg, folder.version("student"), folder.basis, motion)


def plan(formats: str, precision: str) -> list[tuple[str, str]]:
    """(format, precision) pairs; ``all`` expands, and with ``--format all`` a precision a format lacks is
    skipped (fp16 exists only in OpenVINO; TFLite's dynamic-range is ``w8``)."""
    fmts = list(EXPORTABLE) if formats == "all" else [formats]
    out = []
    for f in fmts:
        precs = FORMATS[f].precisions if precision == "all" else (precision,)
        for p in precs:
            if formats == "all" and p not in FORMATS[f].precisions:
                continue
            check(f, p)
            out.append((f, p))
    if not out:
        raise ParlaError(f"no format offers precision {precision}")
    return out


def export_model(
    checkpoint: str | Path,
    formats: str,
    precision: str,
    out_dir: str | Path,
    *,
    calib: str | None = None,
    calib_size: int = 64,
    parity: str | None = None,
    parity_size: int = 32,
    seed: int = 0,
    show: bool = True,
) -> dict:
    """Export, check parity, write ``parity.json`` and ``parity.md``; returns the report."""
    from parla.export.exporter import export
    from parla.progress import progress

    t0 = time.time()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out}: exists and is not a folder (export writes a folder of models)")
    if not out.exists():
        check_output(out)  # its parent exists and is writable: checked before any work
    jobs = plan(formats, precision)
    ck = load_checkpoint(checkpoint)  # a model that fails its checks leaves no output folder behind
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{out}: cannot create the output folder ({e.strerror})") from e
    check_output(out / "parity.json")
    res = ck.cfg.res
    cal = None
    if any(p == "int8" for _, p in jobs):
        cal = S.gather(calib, CALIB_VIDEOS, calib_size, res, seed, max_clips=12, show=show)
    par = S.gather(
        parity,
        PARITY_VIDEOS,
        parity_size,
        res,
        seed + 1,
        max_clips=12,
        show=show,
        fallback=lambda: _demo_samples(ck, parity_size, seed + 1),
    )
    files = []
    with progress(len(jobs), "exporting", enabled=show, unit="model") as bar:
        for fmt, prec in jobs:
            bar.set_description(f"exporting {fmt} {prec}")
            files.append(
                (fmt, prec, export(ck.module, ck.cfg, ck.version, fmt, prec, out, None if cal is None else cal.x))
            )
            bar.update(1)
    report = _report(ck, files, par, cal, show)
    if ck.motion is not None:
        report["motion"] = _motion_exports(ck, sorted({f for f, _ in jobs}), out)
    report["seconds"] = round(time.time() - t0, 1)
    _write_sums(out)
    write_text_atomic(out / "parity.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "parity.md", markdown(report))
    return report


def _write_sums(out: Path) -> None:
    """SHA256SUMS of every model file in the folder (the runtime refuses a file that is not on it)."""
    from parla.modelfolder import write_sha256sums

    models = {".onnx", ".xml", ".bin", ".tflite"}
    write_sha256sums(out, [p.name for p in out.iterdir() if p.is_file() and p.suffix in models])


def _demo_samples(ck: Checkpoint, n: int, seed: int) -> S.Samples:
    from parla.assets import demo_file
    from parla.modelfolder import ModelFolder

    basis = ck.basis or ModelFolder().basis
    return S.from_portrait(demo_file("portrait.jpg"), basis, n, ck.cfg.res, seed)


def _report(ck: Checkpoint, files, par: S.Samples, cal, show: bool) -> dict:
    import torch

    from parla.edge.backends import open_model
    from parla.export import parity as P
    from parla.models.macs import count_macs
    from parla.progress import progress

    y_ref = P.torch_reference(ck.module, par.x)
    x1 = par.x[:1]
    params = sum(p.numel() for p in ck.module.parameters())
    macs = count_macs(ck.module, torch.from_numpy(x1))
    rows = [
        {
            "format": "torch",
            "precision": "fp32",
            "psnr": None,
            "ssim": None,
            "max_abs_error": 0.0,
            "size_mb": round(params * 4 / 2**20, 3),
            "latency_ms": round(P.latency_ms(lambda x: P.torch_reference(ck.module, x), x1), 2),
            "file": None,
        }
    ]
    with progress(len(files), "checking parity", enabled=show, unit="model") as bar:
        for fmt, prec, path in files:
            with open_model(path) as b:
                y = b.run(par.x)
                row = {
                    "format": fmt,
                    "precision": prec,
                    **P.compare(y, y_ref, par, ck.cfg.mode),
                    "size_mb": round(P.file_size_mb(path), 3),
                    "latency_ms": round(P.latency_ms(b.run, x1), 2),
                    "file": path.name,
                }
            if fmt != "torch":
                row["int8_ops"] = count_int8_ops(path)
            rows.append(row)
            bar.update(1)
    return {
        "model": "refiner",
        "version": ck.version,
        "refiner_config": ck.cfg.to_dict(),
        "params": params,
        "macs_per_frame": macs,
        "reference": "torch fp32 eager, same process",
        "machine": P.machine(),
        "threads": torch.get_num_threads(),
        "parity_frames": par.source,
        "calibration": None if cal is None else cal.source,
        "results": rows,
    }


def _motion_exports(ck: Checkpoint, fmts: list[str], out: Path) -> list[dict]:
    """The audio->motion net in FP32 in each format, checked on log-mel of the bundled speech."""
    import torch

    from parla.assets import demo_file
    from parla.audio.io import load_audio
    from parla.audio.mel import log_mel
    from parla.edge.backends import open_model
    from parla.export import parity as P
    from parla.export.exporter import export_motion
    from parla.formats import MOTION_WINDOW

    assert ck.motion is not None  # called only for model folders, which carry the lips net
    net, cfg, norm, version = ck.motion
    speech = load_audio(demo_file("speech.wav"))
    mel = log_mel(speech)
    if cfg.n_mels > mel.shape[1]:  # a phoneme front-end: its features follow the log-mel
        from parla.audio.phonemes import PhonemeEncoder, outputs_of_width, phoneme_track

        encoder = PhonemeEncoder(outputs=outputs_of_width(cfg.n_mels - mel.shape[1]))
        mel = np.concatenate([mel, phoneme_track(speech, len(mel), "offline", encoder)], 1)
    mel = (mel - norm[0]) / norm[1]
    wins = np.stack([mel[i : i + MOTION_WINDOW].T for i in range(0, len(mel) - MOTION_WINDOW, MOTION_WINDOW)][:8])
    wins = wins.astype(np.float32)
    with torch.no_grad():
        ref = np.concatenate([net(torch.from_numpy(w[None])).numpy() for w in wins])
    rows = [
        {
            "format": "torch",
            "precision": "fp32",
            "max_abs_error": 0.0,
            "latency_ms": round(P.latency_ms(lambda w: net(torch.from_numpy(w)), wins[:1]), 3),
        }
    ]
    for fmt in fmts:
        path = export_motion(net, cfg, norm, version, fmt, out)
        with open_model(path) as b:
            rows.append(
                {
                    "format": fmt,
                    "precision": "fp32",
                    "max_abs_error": float(np.abs(b.run(wins) - ref).max()),
                    "size_mb": round(P.file_size_mb(path), 3),
                    "latency_ms": round(P.latency_ms(b.run, wins[:1]), 3),
                    "file": path.name,
                }
            )
    return rows


def count_int8_ops(path: Path) -> int:
    """Operations that compute or carry 8-bit integers in a model file (QDQ nodes, FakeQuantize, int8 kernels)."""
    if path.suffix == ".onnx":
        import onnx

        m = onnx.load(str(path))
        return sum(
            n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger") for n in m.graph.node
        )
    if path.suffix == ".xml":
        import openvino as ov

        m = ov.Core().read_model(str(path))
        return sum(
            op.get_type_name() == "FakeQuantize"
            or any(str(op.get_output_element_type(i)) in ("i8", "u8") for i in range(op.get_output_size()))
            for op in m.get_ops()
        )
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    return sum(d["dtype"] in (np.int8, np.uint8) for d in it.get_tensor_details() if d["index"] >= 0)


def markdown(r: dict) -> str:
    lines = [
        f"# Export parity: {r['model']} {r['version']}",
        "",
        f"Reference: {r['reference']}. Machine: {r['machine']} ({r['threads']} torch threads).",
        f"Parity frames: {r['parity_frames']}. Calibration: {r['calibration'] or 'none (no int8)'}.",
        f"Parameters {r['params']:,}; {r['macs_per_frame'] / 1e9:.3f} GMAC per frame "
        f"({r['refiner_config']['res']}² input).",
        "",
        "| format | precision | PSNR dB | SSIM | max abs err | size MB | latency ms | int8 ops |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def f(v, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    for x in r["results"]:
        lines.append(
            f"| {x['format']} | {x['precision']} | {f(x['psnr'], '.2f')} | {f(x['ssim'], '.4f')} | "
            f"{x['max_abs_error']:.4f} | {x['size_mb']:.3f} | {x['latency_ms']:.2f} | "
            f"{x.get('int8_ops', '—')} |"
        )
    if r.get("motion"):
        lines += [
            "",
            f"Audio-to-motion net (FP32, {r['motion'][0].get('window', 64)} mel frames per call), "
            "on the bundled speech:",
            "",
            "| format | max abs err | latency ms |",
            "|---|---|---|",
        ]
        lines += [f"| {m['format']} | {m['max_abs_error']:.2e} | {m['latency_ms']:.3f} |" for m in r["motion"]]
    return "\n".join(lines) + "\n"
