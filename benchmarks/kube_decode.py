"""Why the Kubernetes client decodes JSON itself: the official client's model deserialisation
against ``json.loads`` on what the hot paths read (a pod list, watch events, a Binding's answer).

Usage: .venv/bin/python benchmarks/kube_decode.py [--pods 2000] [--repeats 7] [--no-write]
Writes the "kube-decode" section of docs/BENCHMARKS.md.

The pods look like the bench's and the live cluster's: metadata with labels, annotations,
owner references and managed fields, one container with requests and limits, a nodeName,
tolerations and a status with conditions. Both sides start from the same bytes, as an
``_preload_content=False`` response gives them: ``json.loads`` of the text (what
neurokube/adapters/kube.py does), and ``ApiClient.deserialize`` into ``V1PodList`` (what
``CoreV1Api.list_pod_for_all_namespaces`` does). The Binding answer is the apiserver's ``Status``
that ``create_namespaced_binding`` fails to turn into a ``V1Binding`` (kubernetes-client/python
issues #547 and #825); it is reported, not timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import machine, write_section  # noqa: E402


def pod(i: int) -> dict:
    name = f"bench-{i:05d}"
    return {
        "metadata": {
            "name": name, "namespace": "default", "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(100000 + i), "creationTimestamp": "2026-12-02T10:00:00Z",
            "labels": {"app": f"workload-{i % 40}", "neurokube.io/run": "bench-00001"},
            "annotations": {"neurokube.io/run-for": "90s"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"rs-{i % 40}",
                                 "uid": f"10000000-0000-0000-0000-{i % 40:012d}", "controller": True}],
            "managedFields": [{"manager": "neurokube", "operation": "Update", "apiVersion": "v1",
                               "time": "2026-12-02T10:00:00Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:containers": {}}}}],
        },
        "spec": {
            "schedulerName": "neurokube", "nodeName": f"kwok-node-{i % 500}", "priority": 0,
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": f"{100 + i % 900}m", "memory": f"{128 + i % 512}Mi"},
                                          "limits": {"cpu": "2", "memory": "1Gi"}}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
        },
        "status": {
            "phase": "Running", "podIP": f"10.0.{i // 250}.{i % 250}", "startTime": "2026-12-02T10:00:01Z",
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": "2026-12-02T10:00:01Z"}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
        },
    }


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    from kubernetes.client import ApiClient

    api = ApiClient()
    text = json.dumps({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"},
                       "items": [pod(i) for i in range(args.pods)]})
    event = json.dumps({"type": "MODIFIED", "object": pod(1)})
    raw = median_s(lambda: json.loads(text), args.repeats)
    model = median_s(lambda: api.deserialize(SimpleNamespace(data=text), "V1PodList"), args.repeats)
    events = 1000
    raw_event = median_s(lambda: [json.loads(event) for _ in range(events)], args.repeats) / events
    model_event = median_s(lambda: [api.deserialize(SimpleNamespace(data=json.dumps(json.loads(event)["object"])),
                                                    "V1Pod") for _ in range(events)], args.repeats) / events
    status = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    try:
        api.deserialize(SimpleNamespace(data=status), "V1Binding")
        binding = "deserialised"
    except Exception as exc:  # noqa: BLE001 - reporting what the generated client does with it
        binding = f"fails: {type(exc).__name__}"
    rows = [
        f"| pod list, {args.pods:,} pods ({len(text) / 1e6:.1f} MB) | {raw * 1e3:.0f} ms | {model * 1e3:.0f} ms | "
        f"{model / raw:.1f}x |",
        f"| one watch event (a pod) | {raw_event * 1e6:.0f} us | {model_event * 1e6:.0f} us | "
        f"{model_event / raw_event:.1f}x |",
    ]
    body = ("Median of " f"{args.repeats} runs; {machine()}.\n\n"
            "| document | `json.loads` | `ApiClient.deserialize` (models) | cost of models |\n|---|---|---|---|\n"
            + "\n".join(rows) + f"\n\nThe Binding's `Status` answer as `V1Binding`: {binding}.\n")
    print(body)
    if not args.no_write:
        write_section("kube-decode", "Kubernetes JSON: decoded directly or into the client's models",
                      "python benchmarks/kube_decode.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
