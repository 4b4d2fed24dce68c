"""The ``neurokube-placement`` pyfunc, defined as code (MLflow "models from code").

``mlflow.pyfunc.log_model(python_model=<this file>, artifacts={"value_model": DIR})`` copies this
file into the logged model; ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` run it, and
``set_model`` below names the model object. Nothing is pickled: the model's state is the value
model's directory (LightGBM text + manifest.json), read in :meth:`PlacementModel.load_context`.
"""

import pandas as pd
from mlflow.pyfunc import PythonModel

import mlflow
from neurokube.adapters.model_files import load_value_model
from neurokube.registry.placement import VALUE_MODEL, predict


class PlacementModel(PythonModel):
    """Input: feature rows (one column per feature name); output: contention, occupancy,
    overflow and cost per row (see neurokube.registry.placement.OUTPUTS)."""

    def load_context(self, context):
        self.model = load_value_model(context.artifacts[VALUE_MODEL])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return predict(self.model, model_input)


mlflow.models.set_model(PlacementModel())
