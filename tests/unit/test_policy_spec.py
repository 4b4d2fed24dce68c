"""Policy specs ``NAME[:key=value,...]``: parsing, typed and validated arguments with upstream
defaults, a tuned peer replaying differently, and the CLI keying results by the spec as given."""

import json
import subprocess
import sys

import numpy as np
import pytest

from neurokube.cli.main import main
from neurokube.errors import InputError
from neurokube.model.policy import LearnedArgs
from neurokube.policies import make_policy
from neurokube.policies.default import DefaultArgs
from neurokube.policies.koordinator import KoordinatorArgs
from neurokube.policies.lvrb import LVRBArgs
from neurokube.policies.registry import policy_args
from neurokube.policies.spec import parse_spec, typed_args
from neurokube.policies.tlp import TLPArgs
from neurokube.sim import SimConfig, replay


def test_parse_keeps_the_text_name_and_pairs_in_order():
    spec = parse_spec("neurokube:model=out/m,node_hour_cost=60")
    assert spec.text == "neurokube:model=out/m,node_hour_cost=60"
    assert spec.name == "neurokube"
    assert spec.pairs == (("model", "out/m"), ("node_hour_cost", "60"))
    assert parse_spec("tlp").plain and parse_spec("tlp").pairs == ()


@pytest.mark.parametrize("text, needle", [
    ("", "empty policy spec"),
    (":a=1", "has no name"),
    ("tlp:", "nothing after ':'"),
    ("tlp:target_utilization", "is not key=value"),
    ("tlp:target_utilization=", "is not key=value"),
    ("tlp:a=1,a=2", "given twice"),
])
def test_bad_syntax_is_one_input_error(text, needle):
    with pytest.raises(InputError, match=needle):
        parse_spec(text)


def test_plain_names_give_upstream_defaults():
    assert policy_args("tlp") == TLPArgs() and TLPArgs().target_utilization == 40
    assert policy_args("lvrb") == LVRBArgs(safe_variance_margin=1, safe_variance_sensitivity=1)
    assert policy_args("koordinator") == KoordinatorArgs() and KoordinatorArgs().cpu_threshold == 0.65
    assert policy_args("default") == DefaultArgs(1, 1, 1, 1)
    assert policy_args("random") is None


def test_values_are_converted_to_the_field_types():
    assert policy_args("tlp:target_utilization=60").target_utilization == 60.0
    assert policy_args("koordinator:cpu_threshold=0.8").cpu_threshold == 0.8
    assert policy_args("lvrb:safe_variance_margin=2").safe_variance_margin == 2.0
    assert policy_args("default:balanced_weight=0,cpu_weight=3") == DefaultArgs(1, 0, 3, 1)
    learned = typed_args(LearnedArgs, parse_spec("neurokube:model=DIR,node_hour_cost=60"))
    assert learned == LearnedArgs(model="DIR", node_hour_cost=60.0)


@pytest.mark.parametrize("text, needle", [
    ("tlp:target=60", "unknown key 'target'"),
    ("tlp:target_utilization=high", "target_utilization='high' is not a number"),
    ("tlp:target_utilization=150", "target_utilization must be in (0, 100)"),
    ("tlp:target_utilization=nan", "not a finite number"),
    ("default:cpu_weight=1.5", "is not a whole number"),
    ("default:cpu_weight=0", "cpu_weight must be in 1..100"),
    ("koordinator:cpu_threshold=1.5", "cpu_threshold must be in (0, 1]"),
    ("lvrb:safe_variance_sensitivity=0", "sensitivity > 0"),
    ("random:x=1", "random takes no arguments"),
    ("magic:x=1", "unknown policy 'magic'"),
])
def test_bad_keys_and_values_name_the_spec_and_the_key(text, needle):
    with pytest.raises(InputError) as info:
        policy_args(text)
    assert needle in str(info.value)
    assert text in str(info.value) or "unknown policy" in str(info.value)


def test_a_tuned_peer_places_differently_and_its_defaults_spelled_out_do_not(small_trace):
    config = SimConfig()
    plain = replay(small_trace, make_policy("tlp", trace=small_trace, seed=2), config)
    spelled = replay(small_trace, make_policy("tlp:target_utilization=40", trace=small_trace, seed=2), config)
    tuned = replay(small_trace, make_policy("tlp:target_utilization=60", trace=small_trace, seed=2), config)
    np.testing.assert_array_equal(plain.node_of, spelled.node_of)
    assert (plain.node_of != tuned.node_of).sum() > 10
    assert tuned.policy == "tlp:target_utilization=60" and plain.policy == "tlp"


def test_replay_json_is_keyed_by_the_spec_as_given_and_the_audit_accepts_it(small_trace_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    specs = ["tlp", "tlp:target_utilization=60", "koordinator:cpu_threshold=0.8"]
    argv = ["replay", "--trace", str(small_trace_dir), "--json", str(out), "--placements-out", str(tmp_path / "pl")]
    for s in specs:
        argv += ["--policy", s]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert list(doc["policies"]) == specs
    assert doc["policies"]["tlp"] != doc["policies"]["tlp:target_utilization=60"]
    assert (tmp_path / "pl" / "tlp:target_utilization=60.csv").is_file()
    assert main(["audit", "--trace", str(small_trace_dir), "--placements", str(tmp_path / "pl"),
                 "--report", str(out)]) == 0


@pytest.mark.parametrize("spec, needle", [
    ("tlp:target=60", "unknown key 'target'"),
    ("koordinator:cpu_threshold=2", "cpu_threshold must be in (0, 1]"),
    ("neurokube:node_hour_cost=-1", "node_hour_cost must be in"),
    ("neurokube:node_hour_cost=60", "needs a model"),
])
def test_cli_refuses_a_bad_spec_in_one_line_with_exit_2(small_trace_dir, spec, needle):
    result = subprocess.run([sys.executable, "-m", "neurokube.cli.main", "replay", "--trace", str(small_trace_dir),
                             "--policy", "default", "--policy", spec], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurokube: error: "), result.stderr
    assert needle in lines[0]
