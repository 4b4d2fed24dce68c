"""Where the live code sits in the layers, checked on the import graph:

* the core (trace, sim, policies, features, model) never imports the live adapters;
* ``neurokube.live`` uses the core and the adapters, never the CLI, the local platform, the
  simulator or the learning loop, and never the official Kubernetes client (raw REST only);
* only ``live/web.py`` touches Flask, and no live module imports functions-framework;
* the live functions' entry points (binder, extender, sweeper) are thin: they import the live
  edge (handlers, web, settings, telemetry), the error taxonomy and logging, and nothing deeper.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "neurokube"
CORE = ("trace", "sim", "policies", "features", "model")
LIVE_FORBIDDEN = ("neurokube.cli", "neurokube.cluster", "neurokube.sim", "neurokube.learning", "neurokube.stack",
                  "neurokube.emulator", "kubernetes", "functions_framework")
FUNCTION_ALLOWED = ("neurokube.live.handlers", "neurokube.live.web", "neurokube.live.settings",
                    "neurokube.live.telemetry", "neurokube.live", "neurokube.errors", "neurokube.logs")


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names if node.module == "neurokube.live")
    return out


@pytest.mark.parametrize("path", [p for layer in CORE for p in sorted((PKG / layer).glob("*.py"))],
                         ids=lambda p: str(p.relative_to(PKG)))
def test_core_does_not_import_live(path):
    assert not any(name.startswith("neurokube.live") for name in imports(path))


@pytest.mark.parametrize("path", sorted((PKG / "live").glob("*.py")), ids=lambda p: p.name)
def test_live_stays_an_adapter(path):
    for name in imports(path):
        assert not name.startswith(LIVE_FORBIDDEN), f"{path.name} imports {name}"
        if name.split(".")[0] == "flask":
            assert path.name == "web.py", f"{path.name} imports flask"


@pytest.mark.parametrize("path", [ROOT / "functions" / name / "main.py" for name in ("binder", "extender", "sweeper")],
                         ids=lambda p: p.parent.name)
def test_function_entry_points_are_thin(path):
    for name in imports(path):
        if name.startswith("neurokube"):
            assert name in FUNCTION_ALLOWED, f"{path} reaches past the live edge: {name}"
    assert len(path.read_text().splitlines()) < 80


def test_the_local_platform_does_not_need_the_live_package():
    assert not any(n.startswith("neurokube.live") for n in imports(PKG / "cluster" / "functions.py"))
