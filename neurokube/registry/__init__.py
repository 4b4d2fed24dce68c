"""The model registry adapter (MLflow): runs, model versions, the ``champion`` alias.

Only this package imports ``mlflow``. ``neurokube-placement`` travels as an MLflow Model: a pyfunc
defined as code with the value model's own files (LightGBM text + ``manifest.json``) as artifacts
(:mod:`neurokube.registry.placement`), never as a pickle.
"""

from neurokube.registry.mlflow_registry import Registry

__all__ = ["Registry"]
