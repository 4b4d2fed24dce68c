"""The pinned versions in ``deploy/local/versions.json`` and the cache key derived from them.

The cache key ("pin hash") covers everything that decides what the binaries are: the pins, the
``go.mod``/``go.sum`` of the Go wrapper modules built, the build recipe revision and the Go
toolchain. Any change selects a new cache directory, so stale binaries are never reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from neurokube.errors import InputError

#: Bump when the way binaries are built changes (flags, ldflags, component list).
RECIPE_REVISION = 2

PIN_KEYS = ("kubernetes", "etcd", "kwok", "knative_eventing", "knative_serving")


@dataclass(frozen=True)
class Pins:
    kubernetes: str
    etcd: str
    kwok: str
    knative_eventing: str
    knative_serving: str

    def as_dict(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in PIN_KEYS}


def load_pins(deploy: Path) -> Pins:
    path = deploy / "versions.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError("cannot read the pinned versions", where=str(path), why=str(exc)) from None
    missing = [key for key in PIN_KEYS if not isinstance(doc.get(key), str)]
    if missing:
        raise InputError("pins missing", where=str(path), why=", ".join(missing))
    return Pins(**{key: doc[key] for key in PIN_KEYS})


def pin_hash(deploy: Path, go_version: str, wrappers: Iterable[str]) -> str:
    """A short, stable digest of everything that determines the built binaries."""
    digest = hashlib.sha256()
    digest.update(f"recipe={RECIPE_REVISION}\ngo={go_version}\n".encode())
    digest.update((deploy / "versions.json").read_bytes())
    for wrapper in sorted(deploy / "go" / name for name in set(wrappers)):
        for name in ("go.mod", "go.sum"):
            file = wrapper / name
            digest.update(f"\n{wrapper.name}/{name}\n".encode())
            if file.is_file():
                digest.update(file.read_bytes())
    return digest.hexdigest()[:12]
