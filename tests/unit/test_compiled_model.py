"""The value model's boosters compiled to machine code (lleaves): the same predictions as LightGBM,
the object code cached by checksum, a compiled form that predicts differently refused; the live
Decider compiles in the background, predicts through the compiled trees once they are ready, and
keeps LightGBM (counted) when compiling fails or another model took over meanwhile."""

import threading

import numpy as np
import pytest

from neurokube.adapters import compiled_model
from neurokube.adapters.compiled_model import CompileError, compile_booster, compile_model
from neurokube.adapters.model_files import load_value_model
from neurokube.features.placement import N_FEATURES
from neurokube.live.decide import Decider
from neurokube.live.telemetry import Telemetry
from neurokube.policies.base import PodSpec
from neurokube.testing import write_packing_model
from tests.conftest import make_view


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compiled-models")
    return write_packing_model(root / "v1", version="v1"), write_packing_model(root / "v2", version="v2")


def rows(n=500, seed=1):
    rng = np.random.default_rng(seed)
    out = rng.uniform(0, 2, size=(n, N_FEATURES)) * rng.choice([0.01, 1, 100, 10_000], size=N_FEATURES)
    out[rng.random(out.shape) < 0.05] = np.nan
    return out.astype(np.float32)


def test_compiled_boosters_predict_what_lightgbm_predicts_and_are_cached(model_dirs, tmp_path):
    model = load_value_model(model_dirs[0])
    predictors = compile_model(model, tmp_path / "cache")
    assert set(predictors) == set(model.boosters)
    x = rows()
    for name, booster in model.boosters.items():
        np.testing.assert_allclose(predictors[name](x), booster.predict(x, num_threads=1), rtol=1e-9, atol=1e-9)
    fast = model.with_compiled(predictors)
    plain, compiled = model.predict(x), fast.predict(x)
    assert set(plain) == set(compiled)
    for name in plain:
        np.testing.assert_allclose(compiled[name], plain[name], rtol=1e-9, atol=1e-9)
    objects = sorted((tmp_path / "cache").glob("*.o"))
    assert len(objects) == len(model.boosters)
    stamps = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in objects]
    again = compile_model(model, tmp_path / "cache")  # loaded from the cache, not compiled again
    assert sorted((tmp_path / "cache").glob("*.o")) == objects
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in objects] == stamps
    assert not list((tmp_path / "cache").glob(".*"))  # no scratch file left behind
    np.testing.assert_array_equal(again["occupancy"](x), predictors["occupancy"](x))


def test_a_compiled_form_that_predicts_differently_is_refused(model_dirs, tmp_path, monkeypatch):
    booster = load_value_model(model_dirs[0]).boosters["occupancy"]
    real = compiled_model._predictor
    monkeypatch.setattr(compiled_model, "_predictor", lambda compiled: (lambda x: real(compiled)(x) + 1e-3))
    with pytest.raises(CompileError, match="predicts differently from LightGBM"):
        compile_booster(booster, tmp_path, "occupancy")


def test_an_unusable_cache_directory_is_a_compile_error(model_dirs, tmp_path):
    booster = load_value_model(model_dirs[0]).boosters["occupancy"]
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(CompileError, match="could not compile the occupancy booster"):
        compile_booster(booster, tmp_path / "file", "occupancy")


def view():
    return make_view([8000] * 6, [16384] * 6, [0, 1000, 2500, 4000, 6000, 7500], [0, 512, 1024, 2048, 4096, 8000])


PODS = [PodSpec(c, m) for c in (100, 250, 500) for m in (64, 512)]


def test_the_decider_compiles_in_the_background_and_decides_as_before(model_dirs, tmp_path):
    telemetry = Telemetry()
    plain = Decider(model_dirs[0], Telemetry(), seed=3)
    decider = Decider(model_dirs[0], telemetry, seed=3, compiler=lambda m: compile_model(m, tmp_path))
    decider.compiling.join(60)
    assert set(decider.policy.model.compiled) == {"contention", "occupancy"}
    assert telemetry.model_compiles.labels(result="compiled")._value.get() == 1
    for pod in PODS:
        a, b = plain.choose(pod, view(), metrics_fresh=True), decider.choose(pod, view(), metrics_fresh=True)
        assert (a.index, a.fallback) == (b.index, b.fallback) and b.fallback == ""
        np.testing.assert_allclose(b.features, a.features)


def test_a_failed_compilation_is_counted_and_lightgbm_keeps_deciding(model_dirs):
    def broken(model):
        raise CompileError("no LLVM here")

    telemetry = Telemetry()
    decider = Decider(model_dirs[0], telemetry, compiler=broken)
    decider.compiling.join(10)
    assert telemetry.model_compiles.labels(result="failed")._value.get() == 1
    assert decider.policy.model.compiled == {}
    choice = decider.choose(PODS[0], view(), metrics_fresh=True)
    assert choice.fallback == "" and choice.policy == "neurokube"


def test_a_compilation_that_finishes_after_the_model_was_replaced_is_not_used(model_dirs, tmp_path):
    release, calls = threading.Event(), []

    def slow(model):
        calls.append(model.version)
        if len(calls) == 1:
            release.wait(30)
        return compile_model(model, tmp_path)

    telemetry = Telemetry()
    decider = Decider(model_dirs[0], telemetry, compiler=slow)
    first = decider.compiling
    decider.install(load_value_model(model_dirs[1]), "models:/neurokube-placement/2")
    release.set()
    first.join(60)
    decider.compiling.join(60)
    assert calls == ["v1", "v2"] and decider.model_version == "v2"
    assert telemetry.model_compiles.labels(result="superseded")._value.get() == 1
    assert telemetry.model_compiles.labels(result="compiled")._value.get() == 1
    assert set(decider.policy.model.compiled) == {"contention", "occupancy"}


def test_the_compile_counter_is_exported_before_anything_compiles():
    """The alert NeuroKubeModelCompileFailing reads the failed series: it must exist at 0."""
    from prometheus_client import generate_latest

    text = generate_latest(Telemetry().registry).decode()
    for result in ("compiled", "failed", "superseded"):
        assert f'neurokube_model_compiles_total{{result="{result}"}} 0.0' in text
