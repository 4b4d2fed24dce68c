"""The layer rules, checked by import-linter against the contracts in pyproject.toml.

``[tool.importlinter]`` in pyproject.toml holds the contracts (docs/ARCHITECTURE.md, "Layer
contracts"): the pure core, the simulator kept out of policies/features/model/forecast, no I/O
clients in the core, adapters serving outward, live code as an adapter, production code without the
local platform, the local platform without the CLI, mlflow only in the registry. Known violations are
listed there under ``ignore_imports`` with an issue number; an ignored import that has gone is itself
an error, so a fix must remove its line.

Run by hand with ``.venv/bin/lint-imports --no-cache`` from the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: pip install -e '.[test]' installs import-linter"
    # The repository root is the working directory: lint-imports finds neurokube, functions (a
    # namespace package) and pipelines there. --no-cache: nothing written into the work tree.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_layer_contracts_hold():
    result = lint_imports()
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
    assert " 0 broken" in result.stdout, result.stdout


STRICT = """\
[tool.importlinter]
root_packages = ["neurokube", "functions", "pipelines"]
include_external_packages = true

[[tool.importlinter.contracts]]
name = "Deliberately wrong: the simulator may not import the policies it runs"
type = "forbidden"
source_modules = ["neurokube.sim"]
forbidden_modules = ["neurokube.policies"]

[[tool.importlinter.contracts]]
name = "Deliberately wrong: the core may not import numpy"
type = "forbidden"
source_modules = ["neurokube.trace"]
forbidden_modules = ["numpy"]
"""


def test_a_broken_contract_fails_the_run(tmp_path):
    """The same command, on a config whose contracts the code cannot keep, exits non-zero and names
    the offending import lines, internal and external alike."""
    config = tmp_path / "strict.toml"
    config.write_text(STRICT)
    result = lint_imports(str(config))
    out = result.stdout
    assert result.returncode != 0, out
    assert "Contracts: 0 kept, 2 broken." in out, out
    assert "neurokube.sim is not allowed to import neurokube.policies" in out, out
    assert "neurokube.sim.engine -> neurokube.policies" in out, out
    assert "neurokube.trace is not allowed to import numpy" in out, out
