"""The live functions' entry points (binder, extender, sweeper, actuator) are thin: they import the live edge
(handlers, web, settings, telemetry), the error taxonomy and logging, and nothing deeper.

The other layer rules (the core never imports the live code; ``neurokube.live`` stays an adapter and
only ``live/web.py`` touches Flask; the local platform's function launcher does not need the live
package) are import-linter contracts in pyproject.toml, checked by test_import_contracts.py. This
allow-list and the length limit are what a ``forbidden`` contract cannot say.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.parametrize("path", [ROOT / "functions" / name / "main.py"
                                  for name in ("binder", "extender", "sweeper", "actuator")],
                         ids=lambda p: p.parent.name)
def test_function_entry_points_are_thin(path):
    for name in imports(path):
        if name.startswith("neurokube"):
            assert name in FUNCTION_ALLOWED, f"{path} reaches past the live edge: {name}"
    assert len(path.read_text().splitlines()) < 80
