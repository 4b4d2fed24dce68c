"""The model registry adapter (MLflow): runs, model versions, the ``champion`` alias.

Only this package imports ``mlflow``. Models travel as the value model's own files (LightGBM
text + ``manifest.json``), never as pickles.
"""

from neurokube.registry.mlflow_registry import Registry

__all__ = ["Registry"]
