"""Read a forecast model directory (``neurokube recommend --train-trace T --model-dir DIR``).

One reader for every edge that needs the models: the CLI (``neurokube recommend --model-dir``,
``--actuator neurokube:model=DIR``) and the live actuator function (``NEUROKUBE_ACTUATOR_MODEL_DIR``,
neurokube/live/acting.py), which may not import the CLI. The directory holds ``manifest.json`` and
the models' JSON and text files; :meth:`Recommender.from_texts` checks and decodes them.
"""

from __future__ import annotations

from pathlib import Path

from neurokube.errors import InputError


def load_model_dir(directory: Path):
    """The :class:`~neurokube.forecast.evaluation.Recommender` saved in ``directory``; an
    :class:`InputError` when it is not a model directory or cannot be read."""
    from neurokube.forecast.evaluation import Recommender

    directory = Path(directory)
    if not (directory / "manifest.json").is_file():
        raise InputError("no manifest.json: not a model directory", str(directory), "train with --train-trace first")
    try:
        files = {f.name: f.read_text(encoding="utf-8") for f in directory.iterdir()
                 if f.suffix in (".json", ".txt") and f.is_file()}
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("cannot be read", str(directory), getattr(exc, "strerror", None) or str(exc)) from None
    return Recommender.from_texts(files)
