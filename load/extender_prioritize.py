"""Scenario (b): kube-scheduler's extender ``/prioritize`` calls with 100, 1,000 or 5,000 nodes.

Each request is an ``ExtenderArgs`` with Go field names: ``nodeCacheCapable: false`` sends the
whole ``Nodes`` NodeList, ``true`` only ``NodeNames`` (the extender then judges nodes from its
watch cache). ``--nodes`` picks the sizes (comma-separated; one is drawn per request) and
``--node-mode`` the mode (``list``, ``names`` or ``both``); the request name carries both, so
Locust reports each combination separately.

A reply is a success when it is HTTP 200 and a JSON list of ``{"Host", "Score"}`` with at most one
entry per node, in the request's order, and scores within 1..10 (a node that scores 0 is left out).
Anything else is a failure with the reason.

    locust -f load/extender_prioritize.py --config load/extender_prioritize.conf --headless
"""

from __future__ import annotations

import itertools
import random

import nkload
import nklocust
from locust import FastHttpUser, between, events, task
from locust.env import Environment

nklocust.register()

SIZES = (100, 1000, 5000)
_payloads: dict[tuple[int, bool], tuple[str, list[str]]] = {}
_pods = itertools.count()


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    group = parser.add_argument_group("extender_prioritize")
    group.add_argument("--nodes", default="1000", help="node counts per request, comma-separated (100,1000,5000)")
    group.add_argument("--node-mode", choices=("list", "names", "both"), default="list",
                       help="list: Nodes (nodeCacheCapable false); names: NodeNames (true); both: alternate")
    group.add_argument("--extender-token", default="", help="bearer token when the extender sets NEUROKUBE_TOKEN")


def parse_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if not sizes or any(n <= 0 for n in sizes):
        raise ValueError(f"--nodes needs positive counts, got {text!r}")
    return sizes


def modes(option: str) -> tuple[bool, ...]:
    return {"list": (False,), "names": (True,), "both": (False, True)}[option]


@events.init.add_listener
def _prepare(environment: Environment, **_kwargs) -> None:
    """Serialise each node set once, before the first user starts."""
    options = environment.parsed_options
    for size in parse_sizes(options.nodes if options else "1000"):
        for capable in modes(options.node_mode if options else "list"):
            names = [nkload.node_name(i) for i in range(size)]
            body = nkload.node_names_json(size) if capable else nkload.node_list_json(size)
            _payloads[(size, capable)] = (body, names)


def check_reply(doc: object, names: list[str]) -> str | None:
    """Why a prioritize reply is wrong, or None. The extender lists the nodes that score 1..10, in
    the request's order, and leaves out those that score 0 (neurokube/live/extender.py)."""
    if not isinstance(doc, list):
        return f"reply is {type(doc).__name__}, not a HostPriorityList"
    if len(doc) > len(names):
        return f"{len(doc)} priorities for {len(names)} nodes"
    position = {name: i for i, name in enumerate(names)}
    last = -1
    for entry in doc:
        host = entry.get("Host") if isinstance(entry, dict) else None
        if not isinstance(host, str) or position.get(host, -1) <= last:
            return f"unexpected entry {str(entry)[:80]} (not a request node after the previous entry's)"
        last = position[host]
        score = entry.get("Score")
        if not isinstance(score, int) or not 1 <= score <= 10:
            return f"score {score!r} of {host} outside 1..10 (a node scoring 0 is left out)"
    return None


class Scheduler(FastHttpUser):
    """One kube-scheduler calling the extender once per pod it scores (httpTimeout 5 s as in
    deploy/knative/kube-scheduler/extender-config.yaml)."""

    host = "http://127.0.0.1:18081"
    wait_time = between(0.0, 0.05)
    network_timeout = 5.0
    connection_timeout = 2.0

    @task
    def prioritize(self) -> None:
        size, capable = random.choice(list(_payloads))
        nodes_json, names = _payloads[(size, capable)]
        i = next(_pods)
        body = nkload.extender_args(nkload.pod_doc(i, uid=f"load-{i}"), nodes_json, capable)
        headers = {"Content-Type": "application/json"}
        token = self.environment.parsed_options.extender_token if self.environment.parsed_options else ""
        if token:
            headers["Authorization"] = f"Bearer {token}"
        name = f"/prioritize [{size} {'NodeNames' if capable else 'Nodes'}]"
        with self.client.post("/prioritize", data=body, headers=headers, name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            try:
                doc = resp.json()
            except ValueError:
                resp.failure("reply is not JSON")
                return
            why = check_reply(doc, names)
            if why:
                resp.failure(why)
            else:
                resp.success()


class Stages(nklocust.StagedShape):
    """Warm-up with one scheduler, then 2 and 4 concurrent ones (kube-scheduler runs one
    scheduling cycle at a time; several profiles or HA leaders do not overlap much more)."""

    stages = (nkload.Stage(1, 1), nkload.Stage(2, 1), nkload.Stage(4, 2))
