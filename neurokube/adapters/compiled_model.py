"""A value model's boosters compiled to machine code (lleaves, on LLVM), cached on disk by checksum.

Why: LightGBM's own ``Booster.predict`` walks the trees in a generic loop. On a 64-row shortlist a
200-tree, 31-leaf booster takes about 0.8 ms there, and a decision asks three boosters, so the
prediction alone used more than a 1,000-node decision's 2 ms budget (issue 17, "speed holds";
``benchmarks/learned_speed.py``). lleaves compiles the same trees into a function: the same
predictions (within 1e-9, checked here on every compile) in about a seventh of the time (0.11 ms
against 0.79 ms, 64 rows, 200 trees, in a one-off timing), and the compiled function releases the GIL while it runs.

Compiling costs about 12 s of one core per 200-tree booster with inlining (``finline``; the
benchmark's "compiling" row). Without inlining, one side-by-side timing (not a committed command)
compiled in 3.5 s but predicted 1.8 times slower, and a 1,000-node decision's p99 was 2.36 ms
against 1.92 ms. So the live functions compile in the background after each model load
(:class:`~neurokube.live.decide.Decider`) and LightGBM predicts until then. The object code is
cached under ``directory`` by the sha256 of the booster's text, lleaves' and LLVM's versions and
the host CPU, written to a temporary name and renamed, so a restart or a second process on the
same host loads it instead of compiling again, and a half-written file is never loaded.

Any failure (lleaves or LLVM missing or broken, the cache unwritable, predictions that differ
from the booster's) raises :class:`CompileError`; the caller keeps LightGBM and counts it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from neurokube.errors import PermanentError
from neurokube.model.value_model import Predictor, ValueModel

PROBE_ROWS = 256
INLINE = True  # lleaves' finline: see the module docstring
TOLERANCE = 1e-9  # relative, on the probe's predictions


class CompileError(PermanentError):
    """A booster could not be compiled, or its compiled form does not predict what it predicts."""


def compile_model(model: ValueModel, directory: Path) -> dict[str, Predictor]:
    """A compiled predictor for every booster of ``model`` (target name -> predictor)."""
    return {name: compile_booster(booster, directory, name) for name, booster in model.boosters.items()}


def compile_booster(booster, directory: Path, name: str = "booster") -> Predictor:
    """``booster`` (a ``lightgbm.Booster``) compiled, loaded from ``directory``'s cache when it is there."""
    try:
        import lleaves
        import llvmlite.binding as llvm
    except ImportError as exc:  # an image built without them: LightGBM stays
        raise CompileError(f"lleaves is not installed: {exc}") from None
    text = booster.model_to_string()
    key = hashlib.sha256("\n".join((
        text, metadata.version("lleaves"), metadata.version("llvmlite"), llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(), f"finline={INLINE}")).encode()).hexdigest()[:24]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        source = directory / f"{name}-{key}.txt"
        if not source.exists():
            _write_atomically(source, text.encode())
        compiled = lleaves.Model(model_file=str(source))
        target = directory / f"{name}-{key}.o"
        if target.exists():
            compiled.compile(cache=str(target), finline=INLINE)
        else:
            fd, scratch = tempfile.mkstemp(dir=directory, prefix=f".{name}-", suffix=".o")
            os.close(fd)
            os.unlink(scratch)  # lleaves writes the object file only where none exists
            try:
                compiled.compile(cache=scratch, finline=INLINE)
                os.replace(scratch, target)
            finally:
                if os.path.exists(scratch):
                    os.unlink(scratch)
    except (OSError, RuntimeError, ValueError) as exc:
        raise CompileError(f"could not compile the {name} booster: {type(exc).__name__}: {exc}") from None
    predictor = _predictor(compiled)
    _check(predictor, booster, name)
    return predictor


def _predictor(compiled) -> Predictor:
    def predict(features: np.ndarray) -> np.ndarray:
        return compiled.predict(np.ascontiguousarray(features, dtype=np.float64), n_jobs=1)

    predict.compiled = compiled  # keeps the machine code alive as long as the predictor
    return predict


def _check(predictor: Callable[[np.ndarray], np.ndarray], booster, name: str) -> None:
    """The compiled trees must predict what the booster predicts, missing values included."""
    rng = np.random.default_rng(0)
    width = booster.num_feature()
    scale = 10.0 ** rng.integers(-2, 5, size=width)
    rows = rng.normal(0.5, 1.0, size=(PROBE_ROWS, width)) * scale
    rows[rng.random(rows.shape) < 0.05] = np.nan
    rows = rows.astype(np.float32)
    expected = booster.predict(rows, num_threads=1)
    try:
        got = predictor(rows)
    except (RuntimeError, ValueError) as exc:
        raise CompileError(f"the compiled {name} booster failed on a probe: {exc}") from None
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE):
        worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
        raise CompileError(f"the compiled {name} booster predicts differently from LightGBM "
                           f"(largest difference {worst:.3g} on {PROBE_ROWS} probe rows)")


def _write_atomically(path: Path, data: bytes) -> None:
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(scratch, path)
    except BaseException:
        if os.path.exists(scratch):
            os.unlink(scratch)
        raise
