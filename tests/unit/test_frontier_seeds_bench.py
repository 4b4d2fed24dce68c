"""benchmarks/frontier_seeds.py's tables (issue 17): the validation rule that picks a wide near-tie,
and the evaluation table's verdicts, on small hand-made documents."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import frontier_seeds

MODELS = {"c1-s0": Path("m0"), "c1-s1": Path("m1")}


def _metrics(pending: float, contention: float = 1.0, node_hours: float = 10.0) -> dict:
    return {"contention_core_s": contention, "node_hours": node_hours, "pending_pod_s": pending}


def _validation(pending_by_setting: dict[str, tuple[float, float]]) -> dict:
    policies = {}  # in the order of the replay's --policy options: the models', then the peers
    for name, path in MODELS.items():
        policies[f"neurokube:model={path}"] = _metrics(130.0)
        for setting in frontier_seeds.WIDE_TIES:
            first, second = pending_by_setting.get(setting, (200.0, 200.0))
            policies[f"neurokube:model={path},{setting}"] = _metrics(first if name == "c1-s0" else second)
    policies |= {"most-allocated": _metrics(100.0, contention=1e6), "tlp": _metrics(150.0)}
    return {"real-4-40n": policies}


def test_a_wide_near_tie_qualifies_only_when_every_model_waits_within_two_percent_of_packing():
    tie30, tie100 = frontier_seeds.WIDE_TIES[0], frontier_seeds.WIDE_TIES[1]
    verdict = frontier_seeds.within_packing(_validation({tie30: (101.9, 97.0), tie100: (99.0, 102.1)}), MODELS)
    assert verdict == {tie30: 2.0}  # tie100: one model waits 2.1 % longer; contention summed over the models


def test_the_validation_table_has_one_row_per_model_setting_and_peer():
    lines = frontier_seeds.validation_table(_validation({}), MODELS)
    rows = lines[2:]
    assert len(rows) == len(MODELS) * (1 + len(frontier_seeds.WIDE_TIES)) + 2
    assert rows[0].startswith("| c1-s0 | `default` | 1 / 10.0 / 130 |")
    assert rows[-1].startswith("| peer | `tlp` |")


def _part(undominated: list[str], beats_tlp: bool) -> dict:
    dominated = {"tlp": {"dominated": True}, "most-allocated": {"dominated": True}}
    for spec in undominated:
        dominated[spec] = {"dominated": False, "closest": "neurokube:node_hour_cost=30", "closest_ratio": 1.0625,
                           "fails_on": ["pending"]}
    return {"dominated": dominated, "goals": {
        "every peer point dominated": {"met": not undominated, "dominated": len(dominated) - len(undominated),
                                       "of": len(dominated), "not dominated": undominated},
        "default beats default at its default": {"met": True},
        "default beats tlp at its default": {"met": beats_tlp}}}


def test_the_evaluation_table_marks_each_miss_and_names_the_closest_point():
    docs = {"c1-s0": {"traces": {"a": _part([], True)}, "total": _part([], True)},
            "c1-s1": {"traces": {"a": _part(["tlp:target_utilization=25"], False)},
                      "total": _part(["tlp:target_utilization=25"], True)}}
    lines = frontier_seeds.evaluation_table(docs)
    assert len(lines) == 2 + 4
    assert lines[2] == "| c1-s0 | a | 2/2 | met | met | - | none |"
    missed = lines[4]
    assert missed.startswith("| c1-s1 | a | **2/3** | met | **NOT met** | - |")
    assert "`tlp:target_utilization=25` (`node_hour_cost=30`: 1.062x on pending)" in missed


@pytest.mark.parametrize("text", ["", "a", "1,-2", "1.5"])
def test_seed_lists_refuse_what_is_not_non_negative_integers(text):
    with pytest.raises(argparse.ArgumentTypeError):
        frontier_seeds._int_list(text)
