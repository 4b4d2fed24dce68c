"""Value models on disk: a model directory holds the texts of
:meth:`~neurokube.model.value_model.ValueModel.to_texts`, one file each (``manifest.json``,
``contention.txt``, ``occupancy.txt``, maybe ``overflow.txt``).

The checks are the core's (:meth:`ValueModel.from_texts`); this module reads and writes the files.
A directory is read lazily, a file only when the core asks for it, so a target the manifest names
like a pickle is refused before it is ever opened. What the file system refuses is a
:class:`~neurokube.model.value_model.ModelError` too: no ``manifest.json`` means no model
(``model_missing``), anything else unreadable a corrupt one.

:func:`load_learned_policy` is the learned policy of a model directory, for the CLI's policy specs
and the live Decider: a missing or broken model gives the policy's fallback, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

from neurokube.errors import NeuroKubeError
from neurokube.logs import event
from neurokube.model.policy import ABSOLUTE_TIE, LearnedPolicy, learned_policy
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import MANIFEST, ModelError, ValueModel
from neurokube.policies.framework import Reason

log = logging.getLogger(__name__)


def save_value_model(model: ValueModel, directory: str | Path) -> Path:
    """Write ``model`` into ``directory`` (created); returns the directory. The manifest is
    written last, so a write cut short leaves no model rather than a broken one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    texts = model.to_texts()
    for name, text in texts.items():
        if name != MANIFEST:
            (directory / name).write_text(text)
    (directory / MANIFEST).write_text(texts[MANIFEST])
    return directory


def load_value_model(directory: str | Path, weights: RewardWeights | None = None) -> ValueModel:
    """Load and check the model in ``directory``; raises :class:`ModelError` saying what is wrong.
    ``weights`` replaces the reward weights of its manifest."""
    directory = Path(directory)
    return ValueModel.from_texts(_ModelDirectory(directory), weights, source=str(directory))


class _ModelDirectory(Mapping[str, bytes]):
    """The files of a model directory as a mapping of name to bytes, each read when asked for.

    A missing ``manifest.json`` is a missing key (no model at all); any other file that cannot be
    read raises the :class:`ModelError` that says why."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __getitem__(self, name: str) -> bytes:
        file = self.directory / name
        try:
            return file.read_bytes()
        except FileNotFoundError as exc:
            if name == MANIFEST:
                raise KeyError(name) from None
            raise ModelError(f"{file}: cannot be read ({exc.strerror or exc})") from None
        except OSError as exc:
            if name == MANIFEST:
                raise ModelError(f"{file}: unreadable manifest ({exc})") from None
            raise ModelError(f"{file}: cannot be read ({exc.strerror or exc})") from None

    def __iter__(self) -> Iterator[str]:
        try:
            return iter(sorted(f.name for f in self.directory.iterdir() if f.is_file()))
        except OSError:
            return iter(())

    def __len__(self) -> int:
        return sum(1 for _ in self)


def load_learned_policy(model_dir: str | Path | None, *, trace=None, seed: int = 0,
                        weights: RewardWeights | None = None, node_hour_cost: float | None = None,
                        max_wait_steps: int = 0, wait_above_core_s: float = 60.0,
                        tie_core_s: float = ABSOLUTE_TIE, tie_from_requested: float = 0.0) -> LearnedPolicy:
    """The learned policy for ``model_dir``; a missing or broken model gives the fallback, not an error.

    ``None`` gives the policy without a model (``no_model``). ``node_hour_cost`` (core-seconds of
    contention per node-hour) replaces the model's trained rate at decision time; ``weights``
    replaces all of its weights. ``trace`` is accepted like every policy factory's, and unused.
    """
    if model_dir is None:
        return learned_policy(None, seed=seed)
    try:
        model = load_value_model(model_dir, weights)
    except ModelError as exc:
        event(log, "cannot load model, using default scoring", level=logging.WARNING, reason=str(exc.reason),
              error=str(exc))
        return learned_policy(None, seed=seed, fallback_reason=exc.reason)
    except NeuroKubeError as exc:  # pragma: no cover - defensive
        event(log, "cannot load model, using default scoring", level=logging.WARNING, error=str(exc))
        return learned_policy(None, seed=seed, fallback_reason=Reason.MODEL_CORRUPT)
    return learned_policy(model, seed=seed, node_hour_cost=node_hour_cost, max_wait_steps=max_wait_steps,
                          wait_above_core_s=wait_above_core_s, tie_core_s=tie_core_s,
                          tie_from_requested=tie_from_requested)
