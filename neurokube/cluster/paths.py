"""Where the cluster tooling reads its recipes and writes binaries, state and logs.

* recipes (pins, Go wrapper modules, KWOK stages) live in the repository under ``deploy/local``;
* binaries are cached outside the repository, in ``$XDG_CACHE_HOME/neurokube/bin/<pin-hash>``, and
  the local functions' compiled models in ``$XDG_CACHE_HOME/neurokube/compiled-models`` (by checksum);
* a running cluster keeps its certificates, configs, pids and logs in one state directory,
  ``$NEUROKUBE_STATE_DIR`` or ``$XDG_STATE_HOME/neurokube/cluster``.
"""

from __future__ import annotations

import os
from pathlib import Path

from neurokube.errors import InputError


def deploy_dir() -> Path:
    """``deploy/local`` of the source checkout (override with ``$NEUROKUBE_DEPLOY_DIR``)."""
    override = os.environ.get("NEUROKUBE_DEPLOY_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "deploy" / "local"
    if not (path / "versions.json").is_file():
        raise InputError(
            "versions.json not found",
            where=str(path),
            why="run from a NeuroKube source checkout or set NEUROKUBE_DEPLOY_DIR to its deploy/local",
        )
    return path


def cache_root() -> Path:
    """Root of the binary cache (override with ``$NEUROKUBE_CACHE_DIR``)."""
    override = os.environ.get("NEUROKUBE_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neurokube"


def compiled_models_dir() -> Path:
    """Where the local functions cache their compiled models (``NEUROKUBE_COMPILED_MODEL_DIR``): shared
    by every local run, safely, since each file is named by the checksum of what it compiles and
    written by rename."""
    return cache_root() / "compiled-models"


def default_state_dir() -> Path:
    override = os.environ.get("NEUROKUBE_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "neurokube" / "cluster"
