"""Build a trace from the real public data in ../shared/data and replay it.

Skipped, with the reason, on machines without that folder (it is never copied into the repo).
"""

import numpy as np
import pytest

from neurokube.adapters.rawdata import read_bitbrains, read_openb_nodes, read_openb_pods
from neurokube.adapters.trace_files import read_trace, write_trace
from neurokube.policies import make_policy
from neurokube.sim import SimConfig, replay
from neurokube.trace.assemble import ArrivalSettings
from neurokube.trace.build import BuildSettings, build_trace
from tests.conftest import SHARED_DATA

OPENB = SHARED_DATA / "alibaba-openb"
BITBRAINS = SHARED_DATA / "bitbrains-rnd-2013-7"

pytestmark = pytest.mark.skipif(
    not (OPENB / "openb_pod_list_default.csv").is_file() or not BITBRAINS.is_dir(),
    reason=f"real traces not present at {SHARED_DATA} (they are not shipped with the repository)")


def test_build_from_real_data_and_replay(tmp_path):
    settings = BuildSettings(arrivals=ArrivalSettings(hours=6, warmup_hours=6, seed=1), nodes=20, workloads=120)
    trace = build_trace("real", read_openb_pods(OPENB / "openb_pod_list_default.csv"),
                        read_openb_nodes(OPENB / "openb_node_list_all_node.csv"),
                        read_bitbrains(BITBRAINS, limit=40), settings)
    trace = read_trace(write_trace(trace, tmp_path / "real"))
    assert len(trace.nodes) == 20 and len(trace.pods) > 100
    assert set(np.unique(trace.pods.qos)) <= {0, 1, 2}
    # every node comes from the openb list, every pod fits some node
    assert all(name.startswith("openb-node-") for name in trace.nodes.name)
    assert trace.pods.cpu_request_milli.max() <= trace.nodes.cpu_milli.max()
    # the load hits the target within 15 % (the estimate is stochastic)
    p = trace.pods
    horizon = 6 * 3600.0
    load = (p.cpu_request_milli * np.minimum(p.duration_s, horizon - p.creation_s)).sum() / horizon
    assert load / trace.nodes.cpu_milli.sum() == pytest.approx(settings.arrivals.target_load, rel=0.15)
    result = replay(trace, make_policy("tlp", trace=trace), SimConfig())
    assert result.metrics["unscheduled_pods"] < len(trace.pods) * 0.05
    assert result.metrics["node_hours"] > 0
