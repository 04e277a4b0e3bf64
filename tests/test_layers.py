"""The package's layering, written once here and checked on every import in the source (module level and the
lazy imports inside functions alike): a module may import only from its own layer or below, and no two modules
import each other (directly or round a loop)."""

from __future__ import annotations

import ast
from pathlib import Path

import parla

ROOT = Path(parla.__file__).parent

# Bottom to top. A module belongs to the layer of its longest listed prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("parla", "parla.errors", "parla.progress", "parla.formats", "parla.files", "parla.assets"),  # base
    ("parla.audio", "parla.models"),  # audio front-end (decoding, log-mel), pure nn.Modules
    ("parla.media", "parla.face", "parla.watermark"),  # video and image I/O, face front-end, watermark
    ("parla.modelfolder",),  # locate, sha256-verify, read config, load weights: used by everyone above
    ("parla.edge",),  # the engine (synthesizer, renderer, threaded runtime) and the runtime backends
    ("parla.metrics",),  # measurement: the trackers that evaluation and data preparation share
    ("parla.training",),  # the server side
    ("parla.quantization", "parla.export"),  # calibration, INT8 quantizers, one exporter per format
    ("parla.integrations",),  # the runtime inside other frameworks (a Pipecat video service)
    ("parla.cli", "parla.commands", "parla.bench", "parla.__main__"),  # commands
)


def layer_of(module: str) -> int:
    best, level = "", None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, level = name, i
    if level is None:
        raise AssertionError(f"{module}: in no layer of tests/test_layers.py")
    return level


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> set[str]:
    """Every ``parla`` module this file imports, anywhere in it."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == root.name}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] == root.name:
                # `from parla.x import y` may name the submodule parla.x.y: count it when it exists
                subs = {f"{target}.{a.name}" for a in node.names}
                out |= {s for s in subs if _exists(s, root)} or {target}
    return out


def _exists(module: str, root: Path) -> bool:
    rel = Path(*module.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def graph(root: Path) -> dict[str, set[str]]:
    return {module_name(p, root): imports(p, root) for p in sorted(root.rglob("*.py"))}


def forbidden_edges(root: Path) -> list[str]:
    return [
        f"{src} (layer {layer_of(src)}) imports {dst} (layer {layer_of(dst)})"
        for src, dsts in graph(root).items()
        for dst in sorted(dsts)
        if layer_of(dst) > layer_of(src)
    ]


def cycles(root: Path) -> list[list[str]]:
    """Import loops between modules (a package's ``__init__`` re-exporting its own modules is not one)."""
    g = graph(root)
    edges = {
        m: {d for d in ds if d in g and not m.startswith(d + ".") and not d.startswith(m + ".")} for m, ds in g.items()
    }
    found, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                found.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return found


def package_cycles(root: Path) -> list[tuple[str, str]]:
    """Pairs of sub-packages (or top-level modules) that import each other, through any of their modules."""

    def top(m: str) -> str:
        return ".".join(m.split(".")[:2])

    uses = {(top(s), top(d)) for s, ds in graph(root).items() for d in ds if top(s) != top(d)}
    return sorted((a, b) for a, b in uses if (b, a) in uses and a < b)


def test_no_import_runs_up_the_layers():
    assert forbidden_edges(ROOT) == []


def test_no_import_cycles():
    assert cycles(ROOT) == []
    assert package_cycles(ROOT) == []


def test_the_runtime_imports_no_training_export_or_metrics_code():
    bad = ("parla.training", "parla.export", "parla.quantization", "parla.metrics", "parla.cli")
    for src, dsts in graph(ROOT).items():
        if src.startswith("parla.edge"):
            assert not [d for d in dsts if d.startswith(bad)], src


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """A copy of the package with one upward import added (the runtime importing training code) fails."""
    import shutil

    pkg = tmp_path / "parla"
    shutil.copytree(ROOT, pkg, ignore=shutil.ignore_patterns("assets", "firmware_configs", "__pycache__"))
    synth = pkg / "edge" / "synth.py"
    synth.write_text(synth.read_text() + "\n\ndef _bad():\n    from parla.training.checkpoint import save\n")
    assert forbidden_edges(pkg) == ["parla.edge.synth (layer 4) imports parla.training.checkpoint (layer 6)"]
    (pkg / "metrics" / "frames.py").write_text("from parla.metrics import report\n")  # report imports frames
    assert any("parla.metrics.report" in c and "parla.metrics.frames" in c for c in cycles(pkg))
