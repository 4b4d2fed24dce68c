"""Scheduling profiles of the live functions (NEUROKUBE_PROFILE, neurokube.live.profile):

* a file is YAML, one profile per document; every way it can be wrong refuses start-up with one
  line naming the file, the document and the key (missing file, bad YAML, a key given twice,
  unknown key, missing key, unknown policy, bad argument, a replay-only policy or argument, two
  profiles for one scheduler name, none for this one);
* a peer's spec makes the Decider place as that peer with those arguments (TLP at 60 % on a
  worked example where upstream TLP, default scoring and TLP at 60 % all differ), and its extender
  scores follow the peer's;
* ``neurokube:node_hour_cost=C`` reaches the learned policy (and survives a model reload);
* no profile is today's behaviour: the learned policy as trained, recorded as ``neurokube``;
* the decision log records the spec that decided.
"""

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from neurokube.adapters.model_files import load_value_model
from neurokube.errors import InputError
from neurokube.k8s.objects import parse_pod
from neurokube.live.decide import Decider
from neurokube.live.profile import parse_profiles, profile_for
from neurokube.live.settings import Settings, from_env
from neurokube.live.telemetry import Telemetry
from neurokube.policies.base import PodSpec
from neurokube.policies.default import DefaultPolicy
from neurokube.policies.spec import parse_spec
from neurokube.policies.tlp import TargetLoadPackingPolicy, TLPArgs
from neurokube.testing import FakeKube, fake_runtime, node_doc, pod_doc, write_packing_model
from tests.conftest import make_view

GOOD = """\
---
schedulerName: neurokube
policy: "neurokube:node_hour_cost=60"
---
schedulerName: neurokube-tlp
policy: tlp:target_utilization=60
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_packing_model(tmp_path_factory.mktemp("model") / "champion")


def write(tmp_path, text, name="profiles.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_file_of_profiles_is_read_in_order():
    profiles = parse_profiles(GOOD + "---\n", "p.yaml")
    assert [(p.scheduler_name, p.policy.text, p.document, p.line) for p in profiles] == [
        ("neurokube", "neurokube:node_hour_cost=60", 1, 2), ("neurokube-tlp", "tlp:target_utilization=60", 2, 5)]
    assert [p.policy.pairs for p in profiles] == [(("node_hour_cost", "60"),), (("target_utilization", "60"),)]


@pytest.mark.parametrize("text, scheduler, message", [
    ("schedulerName: neurokube\npolicy: [tlp\n", "neurokube", r"profiles\.yaml:\d+:\d+, document 1: not valid YAML"),
    ("schedulerName: a\npolicy: tlp\n---\nschedulerName: neurokube\npolicy: tlp\npolicy: lvrb\n", "neurokube",
     r"profiles\.yaml:6:1, document 2: not valid YAML: key 'policy' given twice"),
    ("schedulerName: neurokube\npolicy: tlp\npluginConfig: []\n", "neurokube",
     r"document 1 \(line 1\): unknown key 'pluginConfig' \(a profile has schedulerName, policy\)"),
    ("schedulerName: neurokube\n", "neurokube", r"document 1 \(line 1\): key 'policy' is missing"),
    ("schedulerName: neurokube\npolicy: 60\n", "neurokube", r"key 'policy': expected a non-empty string, got 60"),
    ("- schedulerName: neurokube\n", "neurokube", r"document 1 \(line 1\): a profile must be a mapping"),
    ("schedulerName: neurokube\npolicy: trimaran\n", "neurokube",
     r"document 1 \(line 1\): key 'policy': unknown policy 'trimaran' \(one of default, .*, neurokube\)"),
    ("schedulerName: neurokube\npolicy: tlp:target_utilization=150\n", "neurokube",
     r"key 'policy': policy spec 'tlp:target_utilization=150': target_utilization must be in \(0, 100\)"),
    ("schedulerName: neurokube\npolicy: tlp:target_utilization=high\n", "neurokube",
     r"key 'policy': policy spec 'tlp:target_utilization=high': target_utilization='high' is not a number"),
    ("schedulerName: neurokube\npolicy: koordinator:cpu_limit=1\n", "neurokube",
     r"key 'policy': policy spec 'koordinator:cpu_limit=1': unknown key 'cpu_limit' \(koordinator takes "),
    ("schedulerName: neurokube\npolicy: oracle\n", "neurokube", r"key 'policy': policy 'oracle' cannot run live"),
    ("schedulerName: neurokube\npolicy: neurokube:model=/m\n", "neurokube",
     r"key 'policy': .*model= is not for profiles \(the live model is the champion in NEUROKUBE_MODEL_DIR\)"),
    ("schedulerName: neurokube\npolicy: neurokube:max_wait_steps=2\n", "neurokube",
     r"key 'policy': .*max_wait_steps is replay only"),
    (GOOD + "---\nschedulerName: neurokube-tlp\npolicy: default\n", "neurokube",
     r"document 3 \(line 8\): key 'schedulerName': 'neurokube-tlp' already has a profile \(document 2\)"),
    (GOOD, "other", r"profiles\.yaml: no profile has schedulerName 'other' \(NEUROKUBE_SCHEDULER_NAME\) "
                    r"\(profiles: 'neurokube', 'neurokube-tlp'\)"),
    ("", "neurokube", r"no profile has schedulerName 'neurokube' .*\(profiles: none\)"),
])
def test_a_bad_file_is_one_line_naming_file_document_and_key(tmp_path, text, scheduler, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as caught:
        profile_for(path, scheduler)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(InputError, match="NEUROKUBE_PROFILE: .*" + message):  # start-up refuses it too
        from_env({"NEUROKUBE_PROFILE": str(path), "NEUROKUBE_SCHEDULER_NAME": scheduler})


def test_a_missing_file_refuses_start_up(tmp_path):
    with pytest.raises(InputError, match=r"NEUROKUBE_PROFILE: .*nothing\.yaml: cannot read the profile file \(No such"):
        from_env({"NEUROKUBE_PROFILE": str(tmp_path / "nothing.yaml")})


def test_start_up_accepts_a_good_file(tmp_path):
    path = write(tmp_path, GOOD)
    settings = from_env({"NEUROKUBE_PROFILE": str(path), "NEUROKUBE_SCHEDULER_NAME": "neurokube-tlp"})
    assert settings.profile == path and from_env({}).profile is None


# -- what a profile decides ----------------------------------------------------------------------


def worked_view():
    """Three 8-core nodes at 0, 2 and 4 cores of measured use, and 0, 1 and 2 cores requested.

    A 500m pod is predicted at 750m (TLP: 1.5 x request), so utilisation after it is 9 %, 34 %
    and 59 %: TLP at 60 % packs onto n2, upstream TLP (40 %) onto n1, default scoring spreads to n0.
    """
    return make_view([8000] * 3, [16384] * 3, [0, 1000, 2000], [0, 0, 0], cpu_mean=[0, 2000, 4000])


POD = PodSpec(500, 256)


def test_a_tlp_profile_places_like_tlp_with_its_arguments():
    rng = np.random.default_rng(0)
    assert TargetLoadPackingPolicy(rng, TLPArgs(target_utilization=60)).select(POD, worked_view()) == 2
    assert TargetLoadPackingPolicy(rng).select(POD, worked_view()) == 1
    assert DefaultPolicy(rng).select(POD, worked_view()) == 0
    telemetry = Telemetry()
    decider = Decider(None, telemetry, spec=parse_spec("tlp:target_utilization=60"), metrics_configured=False)
    choice = decider.choose(POD, worked_view(), metrics_fresh=False)  # a peer reads the view as it is
    assert (choice.index, choice.policy, choice.fallback, choice.model_version) == (
        2, "tlp:target_utilization=60", "", "none")
    assert choice.propensity.tolist() == [0.0, 0.0, 1.0] and choice.features.shape[0] == 3
    assert Decider(None, telemetry, spec=parse_spec("tlp")).choose(POD, worked_view(), True).index == 1
    scores, reason = decider.scores(POD, worked_view(), metrics_fresh=False)
    assert reason == "" and scores.tolist()[2] == 10 and int(np.argmax(scores)) == 2
    assert not [s for m in telemetry.fallbacks.collect() for s in m.samples if s.value]  # nothing counted


def test_a_peer_that_leaves_a_fitting_pod_pending_is_overruled_and_counted():
    telemetry = Telemetry()
    decider = Decider(None, telemetry, spec=parse_spec("koordinator:cpu_threshold=0.05"))
    choice = decider.choose(POD, worked_view(), metrics_fresh=True)  # 425m estimated: over 5 % (400m) everywhere
    assert (choice.policy, choice.fallback, choice.index) == ("default", "policy_declined", 0)
    assert telemetry.fallbacks.labels(reason="policy_declined")._value.get() == 1


def test_a_learned_profile_sets_the_node_hour_rate(model, tmp_path):
    trained = load_value_model(model).weights.node_hour
    spec = parse_spec("neurokube:node_hour_cost=7.5")
    champion = tmp_path / "champion"
    shutil.copytree(model, champion)
    decider = Decider(champion, Telemetry(), spec=spec, reload_s=0.0)
    assert trained != 7.5 and decider.policy.model.weights.node_hour == 7.5
    choice = decider.choose(POD, worked_view(), metrics_fresh=True)
    assert (choice.policy, choice.fallback, choice.model_version) == (spec.text, "", "packing-test")
    os.utime(champion / "manifest.json", ns=(1, 1))  # a new champion keeps the profile's rate
    decider.choose(POD, worked_view(), metrics_fresh=True)
    assert decider.policy.model.weights.node_hour == 7.5 and decider.policy.name == spec.text
    fallback = decider.choose(POD, worked_view(), metrics_fresh=False)
    assert (fallback.policy, fallback.fallback) == ("default", "prometheus_unavailable")


def test_every_live_learned_argument_reaches_the_policy_and_survives_install(model):
    """A profile argument the live path dropped would be accepted and silently ignored."""
    spec = parse_spec("neurokube:tie_core_s=10,wait_above_core_s=5,tie_from_requested=0.8")
    decider = Decider(model, Telemetry(), spec=spec)
    plugin = decider.policy.plugin
    assert (plugin.tie_core_s, plugin.wait_above_core_s, plugin.tie_from_requested) == (10.0, 5.0, 0.8)
    decider.install(load_value_model(model), "models:/x/1")  # the MLflow champion, swapped in
    plugin = decider.policy.plugin
    assert (plugin.tie_core_s, plugin.wait_above_core_s, plugin.tie_from_requested) == (10.0, 5.0, 0.8)
    plain = Decider(model, Telemetry())
    assert (plain.policy.plugin.tie_core_s, plain.policy.plugin.tie_from_requested) == (1e-3, 0.0)  # exact ties


def test_no_profile_is_the_learned_policy_as_trained(model):
    decider = Decider(model, Telemetry())
    assert decider.spec is None and decider.peer is None and decider.policy_name == "neurokube"
    assert decider.policy.model.weights == load_value_model(model).weights
    choice = decider.choose(POD, worked_view(), metrics_fresh=True)
    assert (choice.policy, choice.fallback, choice.index) == ("neurokube", "", 2)  # the packing model
    plain = Decider(model, Telemetry(), spec=parse_spec("neurokube"))  # a plain spec is the same thing
    assert plain.policy.model.weights == decider.policy.model.weights
    assert plain.choose(POD, worked_view(), metrics_fresh=True).policy == "neurokube"


def test_the_decision_log_records_the_profile_s_spec(model, tmp_path):
    kube = FakeKube([node_doc(f"n{i}") for i in range(3)], [])
    path = write(tmp_path, "schedulerName: neurokube\npolicy: lvrb:safe_variance_margin=2\n")
    runtime = fake_runtime(kube, Settings(model_dir=model, profile=path, replica="r1",
                                          decision_log=str(tmp_path / "log"), decision_batch=1000,
                                          decision_spool_dir=tmp_path / "spool"))
    doc = pod_doc("p", "500m", "256Mi", uid="uid-p")
    kube.add_pod(doc)
    outcome = runtime.scheduler.schedule(parse_pod(doc), "req-1")
    # no Prometheus: a peer still decides (it reads an empty window), no fallback
    assert (outcome.outcome, outcome.policy, outcome.fallback) == ("bound", "lvrb:safe_variance_margin=2", "")
    assert runtime.decisions.flush() == 1
    [decisions] = sorted((tmp_path / "log").rglob("*.decisions.parquet"))
    assert pd.read_parquet(decisions)["policy"].tolist() == ["lvrb:safe_variance_margin=2"]
