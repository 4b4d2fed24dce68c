"""Scenario (a): ApiServerSource pod-create CloudEvents straight at the binder.

Each request is a binary-mode CloudEvent (``ce-*`` headers) of type
``dev.knative.apiserver.resource.add`` whose data is the whole Pod (Resource mode), as the
receive adapter sends it. The pods are named ``load-pod-NNNNNN`` in namespace ``load`` with
``schedulerName: neurokube``. The binder can only bind pods that exist in its apiserver: the
loopback launcher (``load/local_functions.py binder --pods N``) pre-creates the first N; on a real
cluster create them first (scenario c does that through the apiserver), otherwise the outcome is
``gone``.

Success: HTTP 200 with a JSON outcome in ``--ok-outcomes`` (default ``bound, already_bound,
unschedulable, gone``: the binder did its job and answered). 4xx, 5xx (a 503 is the binder asking
Knative to redeliver), another outcome or a non-JSON body is a failure with the reason; the
outcome is also the request name's suffix, so the summary shows the split.

    locust -f load/binder_events.py --config load/binder_events.conf --headless
"""

from __future__ import annotations

import itertools
import uuid

import nkload
import nklocust
from locust import FastHttpUser, between, events, task

nklocust.register()

EVENT_TYPE = "dev.knative.apiserver.resource.add"
_pods = itertools.count()


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    group = parser.add_argument_group("binder_events")
    group.add_argument("--ok-outcomes", default="bound,already_bound,unschedulable,gone",
                       help="binder outcomes counted as success (comma-separated)")
    group.add_argument("--pod-offset", type=int, default=0, help="first pod index (load-pod-NNNNNN)")


def judge(status: int, doc: object, ok: set[str]) -> tuple[str | None, str]:
    """(failure reason or None, outcome) of one binder reply."""
    if status != 200:
        message = doc.get("error", "") if isinstance(doc, dict) else ""
        return f"HTTP {status}: {str(message)[:200]}", f"http_{status}"
    if not isinstance(doc, dict) or not isinstance(doc.get("outcome"), str):
        return "reply has no outcome", "invalid"
    outcome = doc["outcome"]
    return (None if outcome in ok else f"outcome {outcome}: {str(doc.get('reason', ''))[:160]}"), outcome


class ReceiveAdapter(FastHttpUser):
    """One ApiServerSource receive adapter forwarding pod ADDED events."""

    host = "http://127.0.0.1:18080"
    wait_time = between(0.0, 0.02)
    network_timeout = 10.0
    connection_timeout = 2.0

    @task
    def pod_added(self) -> None:
        options = self.environment.parsed_options
        ok = set((options.ok_outcomes if options else "bound").split(","))
        i = next(_pods) + (options.pod_offset if options else 0)
        pod = nkload.pod_doc(i, uid=str(uuid.uuid5(uuid.NAMESPACE_URL, nkload.pod_name(i))))
        headers = nkload.cloudevent_headers(str(uuid.uuid4()), EVENT_TYPE, pod["metadata"]["namespace"],
                                            pod["metadata"]["name"])
        with self.client.post("/", json=pod, headers=headers, name="CloudEvent pod add",
                              catch_response=True) as resp:
            try:
                doc = resp.json()
            except ValueError:
                doc = None
            why, outcome = judge(resp.status_code, doc, ok)
            resp.request_meta["name"] = f"CloudEvent pod add -> {outcome}"
            if why:
                resp.failure(why)
            else:
                resp.success()


class Stages(nklocust.StagedShape):
    """A burst as a Deployment scale-up produces it: 2, then 8, then 16 adapters' worth of events."""

    stages = (nkload.Stage(2, 2), nkload.Stage(8, 4), nkload.Stage(16, 8))
