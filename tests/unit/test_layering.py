"""The design rule that keeps the core pure, checked on the import graph.

* The core (trace, sim, policies, features, model) imports no adapter, CLI, cluster or function
  code, and no I/O-bound third-party client.
* Policies, features and the model know nothing of the simulator (the simulator runs them).
"""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "neurokube"
CORE = ("trace", "sim", "policies", "features", "model", "forecast")
IO_LIBS = ("requests", "urllib", "http", "socket", "subprocess", "minio", "mlflow", "kubernetes",
           "prometheus_api_client", "flask", "functions_framework", "matplotlib", "tqdm")
# Readers and writers of trace files are the only I/O in the core, and they are named for it.
IO_MODULES = {"trace/io.py"}


def test_only_the_registry_adapter_imports_mlflow():
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                 if any(n.split(".")[0] == "mlflow" for n in imports(p)) and "registry" not in p.parts]
    assert offenders == []


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def core_files():
    for layer in CORE:
        for path in sorted((PKG / layer).glob("*.py")):
            yield layer, path


@pytest.mark.parametrize("layer, path", list(core_files()), ids=lambda v: str(v)[-40:])
def test_core_does_not_reach_the_edges(layer, path):
    for name in imports(path):
        assert not name.startswith(("neurokube.cli", "neurokube.cluster", "neurokube.functions")), name
        if str(path.relative_to(PKG)) not in IO_MODULES:
            assert not name.startswith("neurokube.adapters"), f"{path.name} imports {name}"
        assert name.split(".")[0] not in IO_LIBS, f"{path.name} imports {name}"
        if layer in ("policies", "features", "model", "forecast"):
            assert not name.startswith("neurokube.sim"), f"{path.name} imports the simulator"
