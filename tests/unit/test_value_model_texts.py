"""The value model as texts (the core, no files) and as a directory (neurokube.adapters.model_files):
the same checks and messages either way, and a target named like a pickle is never even read."""

import json
from collections.abc import Mapping

import numpy as np
import pytest

from neurokube.adapters.model_files import load_value_model, save_value_model
from neurokube.features import FEATURE_NAMES
from neurokube.model.reward import RewardWeights
from neurokube.model.value_model import MANIFEST, ModelError, ValueModel
from neurokube.policies.framework import Reason
from neurokube.testing import write_packing_model


@pytest.fixture(scope="module")
def packing(tmp_path_factory):
    return load_value_model(write_packing_model(tmp_path_factory.mktemp("packing") / "m"))


class Recording(Mapping):
    """Texts that remember which names were asked for."""

    def __init__(self, texts: dict) -> None:
        self.texts, self.asked = texts, []

    def __getitem__(self, name):
        self.asked.append(name)
        return self.texts[name]

    def __iter__(self):
        return iter(self.texts)

    def __len__(self):
        return len(self.texts)


def with_manifest(texts: dict, **changes) -> dict:
    manifest = {**json.loads(texts[MANIFEST]), **changes}
    return {**texts, MANIFEST: json.dumps(manifest)}


def test_texts_round_trip_without_files(packing):
    texts = packing.to_texts()
    assert list(texts) == ["contention.txt", "occupancy.txt", MANIFEST]  # the manifest last
    x = np.random.default_rng(2).random((6, len(FEATURE_NAMES))).astype(np.float32)
    for given in (texts, {name: text.encode() for name, text in texts.items()}):
        back = ValueModel.from_texts(given)
        np.testing.assert_allclose(back.cost(x), packing.cost(x), rtol=1e-6)
        assert back.version == packing.version and back.weights == packing.weights
    assert ValueModel.from_texts(texts, RewardWeights(node_hour=1.0)).weights.node_hour == 1.0


def test_a_directory_holds_exactly_the_texts(packing, tmp_path):
    directory = save_value_model(packing, tmp_path / "m")
    texts = packing.to_texts()
    assert sorted(p.name for p in directory.iterdir()) == sorted(texts)
    assert all((directory / name).read_text() == text for name, text in texts.items())


def test_missing_texts_are_a_missing_model_or_a_corrupt_one(packing):
    texts = packing.to_texts()
    with pytest.raises(ModelError, match=r"^no model at these texts \(manifest.json missing\)$") as missing:
        ValueModel.from_texts({})
    assert missing.value.reason is Reason.MODEL_MISSING
    with pytest.raises(ModelError, match=r"^models/m/occupancy.txt: cannot be read \(missing\)$") as corrupt:
        ValueModel.from_texts({k: v for k, v in texts.items() if k != "occupancy.txt"}, source="models/m")
    assert corrupt.value.reason is Reason.MODEL_CORRUPT


@pytest.mark.parametrize("target, message", [
    ("model.PKL", "m/model.PKL: a pickle file"),
    ("x.joblib", "m/x.joblib: a pickle file"),
    ("../x.txt", "m/manifest.json: a target must be a plain file name"),
])
def test_a_suspicious_target_is_refused_before_it_is_asked_for(packing, target, message):
    texts = packing.to_texts()
    manifest = json.loads(texts[MANIFEST])
    manifest["targets"]["contention"] = target
    recording = Recording({**texts, MANIFEST: json.dumps(manifest), target: b"\x80\x05 not read"})
    with pytest.raises(ModelError, match=f"^{message}"):
        ValueModel.from_texts(recording, source="m")
    assert recording.asked == [MANIFEST]


@pytest.mark.parametrize("damage, message", [
    (lambda t: {**t, "contention.txt": b"\x80\x05pickled"}, "m/contention.txt: a pickle, not LightGBM text"),
    (lambda t: {**t, "contention.txt": "\x80\x05pickled"}, "m/contention.txt: a pickle, not LightGBM text"),
    (lambda t: {**t, "contention.txt": b"tree\xff"}, "m/contention.txt: not a text file"),
    (lambda t: {**t, "contention.txt": t["contention.txt"] + "\n"}, "m/contention.txt: checksum mismatch"),
    (lambda t: with_manifest(t, features=["a"]), "m/manifest.json: the model was trained on other features"),
    (lambda t: with_manifest(t, format="other"), "m/manifest.json: not a neurokube-placement-v1 manifest"),
    (lambda t: {**t, MANIFEST: b"\xff{}"}, "m/manifest.json: unreadable manifest"),
    (lambda t: with_manifest(t, reward_weights={"nope": 1}), "m/manifest.json: bad reward_weights"),
])
def test_corrupt_texts_say_which_and_why(packing, damage, message):
    with pytest.raises(ModelError, match=f"^{message}") as corrupt:
        ValueModel.from_texts(damage(packing.to_texts()), source="m")
    assert corrupt.value.reason is Reason.MODEL_CORRUPT


def test_the_directory_names_its_files_in_messages(packing, tmp_path):
    with pytest.raises(ModelError, match=f"^no model at {tmp_path / 'none'} \\(manifest.json missing\\)$"):
        load_value_model(tmp_path / "none")
    directory = save_value_model(packing, tmp_path / "m")
    (directory / "occupancy.txt").unlink()
    with pytest.raises(ModelError, match=f"^{directory / 'occupancy.txt'}: cannot be read \\(No such file"):
        load_value_model(str(directory) + "/")
    (directory / "occupancy.txt").mkdir()
    with pytest.raises(ModelError, match=f"^{directory / 'occupancy.txt'}: cannot be read \\(Is a directory\\)$"):
        load_value_model(directory)
