"""The forecast models' point forecast and their saved bundle.

* The point forecast (``predict(..., 0.5)``) is the mean of the median model's and the Huber
  model's clipped forecasts; with ``point_huber=False`` it is the median model alone, and the
  0.95 quantile is unaffected.
* The bundle round-trips through text with the Huber models, and a bundle of an older format
  (no Huber models) fails with one-line InputError naming the file, the version and the remedy.
"""

import json

import numpy as np
import pytest

from neurokube.errors import InputError
from neurokube.forecast.models import FORMAT_VERSION, ForecastModels, ForecastSettings, fit_forecasters
from neurokube.forecast.series import WorkloadSeries

FAST = ForecastSettings(num_boost_round=10, min_data_in_leaf=20)


def _series(seed=0, w=12, b=80):
    rng = np.random.default_rng(seed)
    level = rng.lognormal(6.0, 1.0, (w, 1))
    cpu = level * rng.lognormal(0.0, 0.4, (w, b))
    cpu[rng.random((w, b)) < 0.03] *= 20  # rare bursts: heavy tails on the normalised target
    cpu[rng.random((w, b)) < 0.1] = np.nan
    pods = np.where(np.isfinite(cpu), rng.integers(1, 4, (w, b)), 0).astype(float)
    mem = np.where(np.isfinite(cpu), level * 4 * rng.lognormal(0.0, 0.1, (w, b)), np.nan)
    return WorkloadSeries(np.array([f"ns/w{i}" for i in range(w)]), 300, cpu, mem, pods,
                          np.full(w, 1000.0), np.full(w, 4096.0))


@pytest.fixture(scope="module")
def models():
    return fit_forecasters([_series(0), _series(1)], FAST)


def test_point_forecast_is_the_mean_of_median_and_huber(models):
    s = _series(2)
    assert set(models.huber) == {(r, h) for r in ("cpu", "mem") for h in (15, 60)}
    median_only = ForecastModels(ForecastSettings(**{**FAST.__dict__, "point_huber": False}),
                                 models.boosters, models.bin_s)
    huber_only = ForecastModels(FAST, {("cpu", 15, 0.5): models.huber[("cpu", 15)]}, models.bin_s,
                                {("cpu", 15): models.huber[("cpu", 15)]})
    point = models.predict(s, "cpu", 15, 0.5)
    med = median_only.predict(s, "cpu", 15, 0.5)
    hub = huber_only.predict(s, "cpu", 15, 0.5)  # the Huber model averaged with itself
    ok = np.isfinite(s.cpu)
    assert np.isfinite(point[ok]).all() and np.isnan(point[~ok]).all()
    np.testing.assert_allclose(point[ok], (med[ok] + hub[ok]) / 2)
    assert not np.allclose(med[ok], hub[ok])  # two different models, so the mean is not either
    np.testing.assert_allclose(models.predict(s, "cpu", 15, 0.95), median_only.predict(s, "cpu", 15, 0.95))


def test_without_point_huber_no_huber_models_are_fitted():
    m = fit_forecasters([_series(0)], ForecastSettings(num_boost_round=5, min_data_in_leaf=20, point_huber=False))
    assert m.huber == {} and not any("huber" in name for name in m.to_texts())


def test_bundle_round_trips_with_the_huber_models(models):
    files = models.to_texts()
    assert {"cpu_15m_huber.txt", "mem_60m_huber.txt", "cpu_15m_q50.txt"} <= set(files)
    again = ForecastModels.from_texts(files)
    s = _series(3)
    for h in (15, 60):
        np.testing.assert_allclose(models.predict(s, "mem", h, 0.5), again.predict(s, "mem", h, 0.5))


def test_an_older_bundle_fails_with_one_clear_line(models):
    files = models.to_texts()
    manifest = json.loads(files["forecast_manifest.json"])
    manifest["format_version"] = 1
    manifest["models"] = [e for e in manifest["models"] if "alpha" in e]  # as version 1 wrote it
    old = {k: v for k, v in files.items() if "huber" not in k}
    old["forecast_manifest.json"] = json.dumps(manifest)
    with pytest.raises(InputError) as err:
        ForecastModels.from_texts(old)
    msg = str(err.value)
    assert "\n" not in msg and "forecast_manifest.json" in msg and "format_version 1" in msg
    assert f"reads {FORMAT_VERSION}" in msg and "retrain" in msg


def test_bad_huber_delta_is_refused():
    with pytest.raises(InputError, match="huber_delta"):
        ForecastSettings(huber_delta=0.0)
