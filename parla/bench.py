"""`parla bench`: how fast each backend x precision runs the whole frame pipeline on this machine, and an
estimate for targets it cannot run.

Per backend (each in its own process, so that peak RSS and thread pools are its own):
- model load time; per-stage latency p50/p95/p99 (audio features, motion, warp, refiner, paste-back) and
  end-to-end fps over an unpaced run (every frame rendered, as fast as the device goes, from audio known ahead as
  a file is: a phoneme front-end encodes it once, in the time);
- a real-time streaming run (``--seconds`` of speech played at its own pace through the threaded engine at
  ``--fps``, as a live source: nothing ahead, the streaming front-end): delivered fps, dropped frames,
  audio-to-frame latency p50/p95/p99;
- peak RSS, model size on disk, and PSNR of its frames vs the torch FP32 student on the same motion.
Writes bench.json (stable keys, below), bench.md and PNG charts. ``--merge a.json b.json`` joins reports from
several machines into one table.

JSON: {"machine": {...}, "settings": {...}, "results": [{"backend", "precision", "device", "fps",
"latency_ms": {"p50", "p95", "p99"}, "stages": {stage: {"p50", "p95", "p99"}}, "audio_to_frame_ms": {...},
"stream_fps", "dropped", "load_s", "peak_rss_mb", "model_mb", "psnr_vs_fp32"}], "estimates": [...]}
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from parla.formats import FORMATS

# Backends x precisions this command tries by default (those whose runtime is installed run).
DEFAULT_RUNS = tuple((f.backend, f.cpu_device, f.best or f.precisions[0]) for f in FORMATS.values())
# Targets this machine cannot run: refiner MACs per frame over a stated sustained INT8 rate. Only the refiner is
# estimated (warp, paste-back and motion run on the host CPU and are measured here). Labelled as estimates.
ESTIMATE_TARGETS = {
    "rpi5 (Cortex-A76 x4, TFLite XNNPACK int8)": (
        60e9,
        "assumed 60 GOP/s sustained int8 on 4 A76 cores (~25 % of 4 x 2.4 GHz x 2 x 16 int8 ops/cycle)",
    ),
    "intel-core-ultra-npu (OpenVINO NPU int8)": (
        2.75e12,
        "assumed 25 % of the 11 TOPS int8 peak of the Meteor Lake NPU",
    ),
    "coral-edgetpu (TFLite full int8)": (1.0e12, "assumed 25 % of the 4 TOPS int8 peak"),
}


def machine() -> dict:
    from parla.export.parity import machine as m

    return {"cpu": m(), "python": platform.python_version()}


def _available(backend: str) -> bool:
    import importlib.util

    from parla.formats import by_backend

    if backend == "tflite":
        return any(importlib.util.find_spec(n) for n in ("ai_edge_litert", "tflite_runtime"))
    return importlib.util.find_spec(by_backend(backend).runtime) is not None


def bench_one(
    backend: str,
    device: str,
    precision: str,
    *,
    portrait: str,
    audio: str,
    seconds: float,
    fps: float,
    frames: int,
    threads: int | None,
    model: str = "default",
) -> dict:
    """One backend x precision, in this process."""
    from parla.audio import load_audio
    from parla.edge.backends import open_models
    from parla.edge.config import load_config
    from parla.edge.engine import peak_rss_mb
    from parla.edge.render import StageTimer
    from parla.edge.sinks import RawSink
    from parla.edge.sources import ArraySource

    cfg = load_config(
        "x86-cpu",
        {
            "backend": backend,
            "device": device,
            "precision": precision,
            "threads": threads,
            "video.fps": fps,
            "fallback_to_cpu": False,
            "model": model,
        },
    )
    t = time.perf_counter()
    models = open_models(cfg)
    load_s = time.perf_counter() - t
    speech = load_audio(audio)
    loops = int(np.ceil(seconds * 16_000 / len(speech)))
    long = np.tile(speech, loops)[: int(seconds * 16_000)]
    with _avatar(portrait, cfg, models) as av:
        # 1. unpaced, as a file is rendered (its phoneme features, if the model has them, are computed once for
        # the clip and counted in the time): every frame, per-stage timing
        t = time.perf_counter()
        clip = long[: int((frames / fps + 1) * 16_000)]
        motion, timer = av.new_motion(known_audio=clip), StageTimer()
        motion.timer = timer
        renderer = av.new_renderer(timer)
        n = 0
        frame_ms = []
        chunk = av.settings.known_chunk_samples  # as Avatar.render pushes a file
        for i in range(0, len(clip), chunk):
            t_chunk = time.perf_counter()
            fms = motion.push(clip[i : i + chunk])
            shared = (time.perf_counter() - t_chunk) * 1e3 / max(len(fms), 1)  # the push, shared by its frames
            for fm in fms:
                t_frame = time.perf_counter()
                renderer.render(fm)
                frame_ms.append(shared + (time.perf_counter() - t_frame) * 1e3)
                n += 1
            if n >= frames:
                break
        unpaced_fps = n / (time.perf_counter() - t)
        # 2. real time through the threaded engine, as a live source (no audio ahead: the streaming front-end)
        stats = av.run(ArraySource(long, cfg.audio.chunk_ms, speed=1.0), RawSink(callback=lambda f, i: None))
        stream_rss = peak_rss_mb()  # what the runtime needs; the parity check below loads the torch reference
        psnr, reference = (
            _psnr_vs_fp32(av, speech[: 16_000 * 4]) if backend != "torch" or precision != "fp32" else (None, None)
        )
        files = list(dict.fromkeys([Path(av.refiner.path), Path(av.lips.path)]))  # torch: one folder
    model_mb = sum(_size(p) for p in files) / 2**20
    s = stats.summary()
    q = {f"p{p}": round(float(np.percentile(frame_ms, p)), 2) for p in (50, 95, 99)}
    return {
        "backend": backend,
        "precision": precision,
        "device": device,
        "fps": round(unpaced_fps, 1),
        "latency_ms": q,
        "stages": timer.summary(),
        "audio_to_frame_ms": s["audio_to_frame_ms"],
        "stream_fps": s["fps"],
        "stream_frames": s["frames"],
        "dropped": s["dropped"],
        "stream_seconds": s["audio_s"],
        "load_s": round(load_s, 3),
        "peak_rss_mb": round(stream_rss, 1),
        "peak_rss_mb_with_parity_check": round(peak_rss_mb(), 1),
        "model_mb": round(model_mb, 2),
        "psnr_vs_fp32": None if psnr is None else round(psnr, 2),
        "psnr_reference": reference,
        "refiner_version": av.version,
    }


def _avatar(portrait: str, cfg, models):
    from parla.edge.avatar import Avatar

    return Avatar.from_image(portrait, cfg, models=models, watermark=True)


def _size(p: Path) -> int:
    if p.is_dir():  # torch: the model folder -> the student refiner + motion weights
        return sum((p / n).stat().st_size for n in ("student.safetensors", "motion.safetensors"))
    return p.stat().st_size + (p.with_suffix(".bin").stat().st_size if p.suffix == ".xml" else 0)


def _psnr_vs_fp32(av, speech: np.ndarray) -> tuple[float | None, str]:
    """Mean PSNR of this backend's frames vs the FP32 student's on the same motion (no watermark), and which FP32
    student that was: the torch reference where torch is installed, else the model folder's FP32 ONNX export on
    onnxruntime (the edge install has no torch), else none (the reason, in the report's label)."""
    from parla.edge.render import FrameRenderer
    from parla.errors import MissingDependencyError, ParlaError
    from parla.export.parity import psnr

    try:
        from parla.edge.backends.torch_backend import TorchBackend

        ref, label = TorchBackend(av.config.model, "cpu", kind="refiner", net="student"), "torch fp32"
    except (ImportError, MissingDependencyError):
        from parla.edge.backends.onnxruntime_backend import OnnxRuntimeBackend
        from parla.modelfolder import ModelFolder

        try:
            path = ModelFolder(av.config.model).edge_model("onnx", "refiner", "fp32")
        except ParlaError:
            return None, "none: no torch and no FP32 ONNX student in the model folder"
        ref, label = OnnxRuntimeBackend(path), "onnx fp32 (torch not installed)"
    motion = av.new_motion()
    fms = [fm for i in range(0, len(speech), 640) for fm in motion.push(speech[i : i + 640])]
    ours = av.new_renderer(stages=False)
    theirs = FrameRenderer(av.portrait, av.settings.basis, ref)
    return float(np.mean([min(psnr(ours.render(fm), theirs.render(fm)), 100.0) for fm in fms[::4]])), label


def estimates(macs: int) -> list[dict]:
    return [
        {
            "target": name,
            "estimate": True,
            "refiner_ms": round(2 * macs / ops * 1e3, 2),
            "refiner_fps": round(ops / (2 * macs), 1),
            "basis": basis,
        }
        for name, (ops, basis) in ESTIMATE_TARGETS.items()
    ]


def refiner_macs() -> int:
    """MACs per frame of the bundled student refiner (counted on the graph, numpy-free of runtimes)."""
    from parla.modelfolder import ModelFolder

    config = ModelFolder().config
    return int(config.get("student", {}).get("macs") or _count_student_macs(config))


def _count_student_macs(config: dict) -> int:
    try:
        import torch

        from parla.models.macs import count_macs
        from parla.models.refiner import Refiner, RefinerConfig
    except ImportError:
        return 660_000_000  # measured: benchmarks/model_stats.py (student 0.660 GMAC)
    cfg = RefinerConfig.from_dict(config["student"]["refiner"])
    from parla.models.refiner import edge_module

    return int(count_macs(edge_module(Refiner(cfg).eval()), torch.zeros(1, 6 + cfg.cond, cfg.res, cfg.res)))


def run_bench(
    runs,
    *,
    out: Path,
    portrait: str,
    audio: str,
    seconds: float,
    fps: float,
    frames: int,
    threads: int | None,
    show: bool = True,
    model: str = "default",
) -> dict:
    """Each (backend, device, precision) of ``runs`` in a fresh process; ``model``: a model folder other than the
    bundled one (a candidate)."""
    from parla.progress import progress

    results, skipped = [], []
    with progress(len(runs), "bench", enabled=show, unit="backend") as bar:
        for backend, device, precision in runs:
            if not _available(backend):
                from parla.formats import by_backend

                skipped.append(f"{backend}: runtime not installed (pip install 'parla[{by_backend(backend).extra}]')")
                bar.update(1)
                continue
            cmd = [
                sys.executable,
                "-m",
                "parla.bench",
                "--one",
                backend,
                device,
                precision,
                "--portrait",
                portrait,
                "--audio",
                audio,
                "--seconds",
                str(seconds),
                "--fps",
                str(fps),
                "--frames",
                str(frames),
            ]
            if threads:
                cmd += ["--threads", str(threads)]
            if model != "default":
                cmd += ["--model", str(Path(model).resolve())]
            p = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in p.stdout.splitlines() if x.startswith("{")]
            if p.returncode != 0 or not line:
                skipped.append(f"{backend} {precision} {device}: " + (p.stderr.strip().splitlines() or ["failed"])[-1])
            else:
                results.append(json.loads(line[-1]))
            bar.update(1)
    macs = refiner_macs()
    report = {
        "machine": machine(),
        "settings": {
            "portrait": portrait,
            "audio": audio,
            "stream_seconds": seconds,
            "fps": fps,
            "unpaced_frames": frames,
            "threads": threads,
            "model": model,
        },
        "results": results,
        "skipped": skipped,
        "estimates": estimates(macs),
        "refiner_macs": macs,
    }
    write_reports(report, out)
    return report


def write_reports(report: dict, out: Path) -> None:
    from parla.files import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "bench.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "bench.md", markdown(report))
    try:
        charts(report, out)
    except ImportError:  # matplotlib is optional: the JSON and Markdown are the report
        print(
            "parla: no PNG charts: matplotlib is not installed (pip install matplotlib); the JSON and Markdown "
            "reports are written",
            file=sys.stderr,
        )


def _psnr_cell(r: dict) -> str:
    if r.get("psnr_vs_fp32") is None:
        return "(reference)" if r["backend"] == "torch" and r["precision"] == "fp32" else "n/a"
    ref = r.get("psnr_reference") or "torch fp32"
    return f"{r['psnr_vs_fp32']}" + ("" if ref == "torch fp32" else f" (vs {ref.split(' (')[0]})")


def markdown(report: dict) -> str:
    reports = report.get("merged", [report])
    lines = [
        "| machine | backend | precision | device | e2e fps (unpaced) | frame ms p50/p95/p99 | refiner ms p50 | "
        "stream fps | dropped | audio-to-frame ms p50/p95/p99 | load s | peak RSS MB | model MB | "
        "PSNR vs FP32 dB |",
        "|" + "---|" * 14,
    ]
    for rep in reports:
        name = rep["machine"].get("cpu") or rep["machine"].get("processor") or "?"
        for r in rep["results"]:
            lat, a2f = r["latency_ms"], r.get("audio_to_frame_ms") or {}
            lines.append(
                f"| {name} | {r['backend']} | {r['precision']} | {r['device']} | {r['fps']} | "
                f"{lat.get('p50')}/{lat.get('p95')}/{lat.get('p99')} | "
                f"{r['stages'].get('refiner', {}).get('p50')} | {r.get('stream_fps')} | {r.get('dropped')} | "
                f"{a2f.get('p50')}/{a2f.get('p95')}/{a2f.get('p99')} | {r.get('load_s')} | "
                f"{r['peak_rss_mb']} | {r['model_mb']} | {_psnr_cell(r)} |"
            )
    est = reports[0].get("estimates", [])
    if est:
        lines += [
            "",
            f"**Estimates, not measurements** (refiner only, {reports[0].get('refiner_macs', 0) / 1e9:.3f} "
            "GMAC per frame at the stated sustained rate):",
            "",
            "| target | refiner ms | refiner fps | basis |",
            "|---|---|---|---|",
        ]
        lines += [f"| {e['target']} | {e['refiner_ms']} | {e['refiner_fps']} | {e['basis']} |" for e in est]
    for rep in reports:
        for s in rep.get("skipped", []):
            lines.append(f"\nSkipped on {rep['machine'].get('cpu', '?')}: {s}")
    return "\n".join(lines) + "\n"


def charts(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for rep in report.get("merged", [report]) for r in rep["results"]]
    if not rows:
        return
    labels = [f"{r['backend']}\n{r['precision']}" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].bar(labels, [r["fps"] for r in rows], color="tab:blue")
    axes[0].axhline(30, color="k", ls="--", lw=1)
    axes[0].set_ylabel("end-to-end fps (unpaced)")
    stages = ["audio_features", "motion", "warp", "refiner", "paste_back"]
    bottom = np.zeros(len(rows))
    for st in stages:
        v = np.array([r["stages"].get(st, {}).get("p50", 0.0) for r in rows])
        axes[1].bar(labels, v, bottom=bottom, label=st)
        bottom += v
    axes[1].set_ylabel("per-stage p50 (ms)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bench_fps_stages.png", dpi=110)
    plt.close(fig)


def merge(paths: list[str], out: Path) -> dict:
    reports = [json.loads(Path(p).read_text()) for p in paths]
    merged = {
        "merged": reports,
        "machine": {"cpu": "merged"},
        "results": [],
        "estimates": reports[0].get("estimates", []) if reports else [],
    }
    write_reports(merged, out)
    return merged


def _main_one(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=3, required=True)
    ap.add_argument("--portrait", required=True)
    ap.add_argument("--audio", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", default="default")
    a = ap.parse_args(argv)
    row = bench_one(
        *a.one,
        portrait=a.portrait,
        audio=a.audio,
        seconds=a.seconds,
        fps=a.fps,
        frames=a.frames,
        threads=a.threads,
        model=a.model,
    )
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PARLA_QUIET", "1")
    raise SystemExit(_main_one(sys.argv[1:]))
