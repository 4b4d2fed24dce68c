"""What each function does with its input, independent of how it arrived (HTTP or CloudEvent).

* :func:`on_pod_event`: an ApiServerSource event in Resource mode. ``add`` and ``update`` of a
  pod of this scheduler without a node and not being deleted are placed; a pod with scheduling
  gates is held by the retrier (:mod:`neurokube.live.retry`) until the watch sees them removed;
  every other pod and
  ``delete`` events are ignored (debug log). Not a pod event at all, a Reference-mode event, data
  that is not a Pod object, or a pod with bad quantities or names: InputError (400), before
  anything else happens, so bad input never reaches the apiserver. The event only names the pod:
  what is placed is the apiserver's pod (:mod:`neurokube.live.trust`), and an event that
  contradicts it is refused (403/410, counted by reason) before anything is written.
* :func:`on_ping`: a PingSource event starts a sweep.
* :func:`on_actuator_ping`: a PingSource event runs one actuator tick (:mod:`neurokube.live.acting`).
* :func:`extender_call`: one extender verb; :func:`extender_reply`: its reply as JSON text.

The runtime (watch cache, clients) is only touched after the input is validated.
"""

from __future__ import annotations

import json
import logging
import time

from cloudevents.abstract import AnyCloudEvent

from neurokube.errors import InputError, NotFoundError, RefusedError
from neurokube.k8s.objects import Pod, parse_pod
from neurokube.live import runtime, trust
from neurokube.live.extender import BindingArgs, Extender, ExtenderArgs, parse_args
from neurokube.live.scheduler import ALREADY_BOUND, IGNORED, UNSCHEDULABLE, Outcome, ignore_reason
from neurokube.live.settings import Settings
from neurokube.live.telemetry import Telemetry, process_telemetry
from neurokube.logs import event

log = logging.getLogger("neurokube.live.handlers")

RESOURCE_EVENT = "dev.knative.apiserver.resource."
REFERENCE_EVENT = "dev.knative.apiserver.ref."
PLACED_EVENTS = (RESOURCE_EVENT + "add", RESOURCE_EVENT + "update")
PING_EVENT = "dev.knative.sources.ping"
KNOWN_EVENTS = frozenset((*PLACED_EVENTS, RESOURCE_EVENT + "delete", PING_EVENT))
EXTENDER_VERBS = ("filter", "prioritize", "bind")


def pod_from_event(ce: AnyCloudEvent, scheduler_name: str) -> tuple[Pod | None, str]:
    """The pod to place, or None and why not. InputError for anything that is not a pod event."""
    kind = ce["type"]
    if not isinstance(kind, str):
        raise InputError("the event type must be a string", why=f"got {type(kind).__name__}")
    if kind.startswith(REFERENCE_EVENT):
        raise InputError(f"event type {kind[:100]!r} is a Reference-mode event",
                         why="configure the ApiServerSource with mode: Resource (the binder needs the whole Pod)")
    if not kind.startswith(RESOURCE_EVENT):
        raise InputError(f"unexpected event type {kind[:100]!r}",
                         why=f"expected {PLACED_EVENTS[0]} or {PLACED_EVENTS[1]}")
    data = ce.get_data()
    if data is None or data == b"" or data == "":
        raise InputError("the event has no data", why="Resource mode sends the whole object")
    if not isinstance(data, dict):
        raise InputError("the event data is not a JSON object", why=f"got {type(data).__name__}")
    object_kind = data.get("kind") or (ce.get("kind") if hasattr(ce, "get") else None)
    if object_kind not in (None, "Pod"):
        return None, f"not a pod ({object_kind})"
    spec = data.get("spec")
    if isinstance(spec, dict) and spec.get("schedulerName", "default-scheduler") != scheduler_name:
        return None, f"schedulerName is {spec.get('schedulerName', 'default-scheduler')!r}"  # no need to parse it
    pod = parse_pod(data)
    if kind not in PLACED_EVENTS:
        return None, f"{kind.removeprefix(RESOURCE_EVENT)} event"
    why = ignore_reason(pod, scheduler_name, gates=False)  # a gated pod goes on: the retrier holds it
    return (None, why) if why else (pod, "")


def on_pod_event(ce: AnyCloudEvent, settings: Settings, request_id: str) -> Outcome:
    telemetry = process_telemetry()
    started = time.thread_time()
    part = "event_failed"
    try:
        outcome = _on_pod_event(ce, settings, request_id, telemetry)
        part = "event_ignored" if outcome.outcome == IGNORED else "event_handled"
        return outcome
    finally:
        telemetry.cpu_seconds.labels(part=part).inc(time.thread_time() - started)


def _on_pod_event(ce: AnyCloudEvent, settings: Settings, request_id: str, telemetry: Telemetry) -> Outcome:
    try:
        pod, why = pod_from_event(ce, settings.scheduler_name)
    except InputError:
        telemetry.events.labels(type=_type_label(ce), result="rejected").inc()
        raise
    if pod is None:
        telemetry.events.labels(type=_type_label(ce), result="ignored").inc()
        key = _key(ce)
        event(log, "event ignored", logging.DEBUG, pod=key, reason=why, request_id=request_id)
        return Outcome(IGNORED, key, reason=why)
    rt = runtime.current(settings)
    try:
        actual, source = trust.actual_pod(pod, rt.cache, rt.kube, settings.pod_watch_wait_s)
    except RefusedError as exc:
        telemetry.events.labels(type=_type_label(ce), result="refused").inc()
        telemetry.refused.labels(reason=exc.reason).inc()
        event(log, "event refused", logging.WARNING, pod=pod.key, reason=exc.reason, error=str(exc),
              request_id=request_id)
        raise
    except Exception:
        telemetry.events.labels(type=_type_label(ce), result="failed").inc()
        raise
    telemetry.pod_lookups.labels(source=source).inc()
    if actual.bound:  # a late or repeated delivery: the apiserver has it bound already
        telemetry.events.labels(type=_type_label(ce), result="handled").inc()
        telemetry.bind_conflicts.labels(kind="already_assigned").inc()
        return Outcome(ALREADY_BOUND, actual.key, actual.node_name, reason="the apiserver has it bound")
    why = ignore_reason(actual, settings.scheduler_name)
    if why:
        if actual.scheduling_gates and rt.retrier is not None:
            rt.retrier.hold_gated(actual)  # placed when the watch sees its last gate removed
        telemetry.events.labels(type=_type_label(ce), result="ignored").inc()
        return Outcome(IGNORED, actual.key, reason=why)
    releases = rt.retrier.releases if rt.retrier is not None else 0
    try:
        outcome = rt.scheduler.schedule(actual, request_id)
    except Exception:
        telemetry.events.labels(type=_type_label(ce), result="failed").inc()
        raise
    namespace = outcome.missing_namespace or None
    if namespace is not None:
        telemetry.events.labels(type=_type_label(ce), result="rejected").inc()
        raise NotFoundError(f"namespace {namespace!r} does not exist", where=f"pod {pod.key}",
                            why="the event names a pod the apiserver does not have")
    if outcome.outcome == UNSCHEDULABLE and rt.retrier is not None:
        rt.retrier.hold(actual, releases)  # placed again as soon as the watch sees room freed (live/retry.py)
    telemetry.events.labels(type=_type_label(ce), result="handled").inc()
    return outcome


def on_ping(ce: AnyCloudEvent, settings: Settings, request_id: str) -> dict:
    telemetry = process_telemetry()
    if ce["type"] != PING_EVENT:
        telemetry.events.labels(type="other", result="rejected").inc()
        raise InputError(f"unexpected event type {str(ce['type'])[:100]!r}", why=f"the sweeper expects {PING_EVENT}")
    report = runtime.current(settings).sweeper.sweep(request_id)
    telemetry.events.labels(type=PING_EVENT, result="handled").inc()
    return report


def on_actuator_ping(ce: AnyCloudEvent, settings: Settings, request_id: str) -> dict:
    """A PingSource event runs one actuator tick (neurokube.live.acting); its report."""
    from neurokube.live import acting  # the forecast models' libraries: only the actuator loads them

    telemetry = process_telemetry()
    if ce["type"] != PING_EVENT:
        telemetry.events.labels(type="other", result="rejected").inc()
        raise InputError(f"unexpected event type {str(ce['type'])[:100]!r}", why=f"the actuator expects {PING_EVENT}")
    try:
        report = acting.current(settings).tick(request_id)
    except Exception:
        telemetry.events.labels(type=PING_EVENT, result="failed").inc()
        raise
    telemetry.events.labels(type=PING_EVENT, result="handled").inc()
    return report


def actuator_readiness(settings: Settings) -> tuple[dict, bool]:
    """The actuator is ready once its client is built (it reads the cluster afresh every tick)."""
    from neurokube.live import acting

    actor = acting.current(settings)
    return {"dry_run": actor.dry_run, "model": actor.model_fallback or "loaded",
            "metrics": "configured" if actor.metrics is not None else "disabled"}, True


def extender_call(verb: str, doc: object, settings: Settings) -> object:
    """Validate ``doc`` for ``verb`` (InputError), then run the verb: its reply as wire objects."""
    extender, args = _extender_and_args(verb, doc, settings)
    return getattr(extender, verb)(args)


def extender_reply(verb: str, doc: object, settings: Settings) -> str:
    """:func:`extender_call`'s reply as compact JSON text, what the HTTP edge sends; prioritize's
    is encoded from memoised per-node prefixes (:class:`~neurokube.live.extender.PriorityEncoder`)."""
    if verb != "prioritize":
        return json.dumps(extender_call(verb, doc, settings), separators=(",", ":"))
    extender, args = _extender_and_args(verb, doc, settings)
    return extender.prioritize_json(args)


def _extender_and_args(verb: str, doc: object, settings: Settings) -> tuple[Extender, ExtenderArgs | BindingArgs]:
    """The parsed arguments of ``verb`` (InputError before the runtime is touched) and the extender."""
    if verb not in EXTENDER_VERBS:
        raise InputError(f"unknown extender verb {verb!r}", why=f"one of {', '.join(EXTENDER_VERBS)}")
    args = parse_args(verb, doc)
    return runtime.current(settings, wait=False).extender, args


def readiness(settings: Settings) -> tuple[dict, bool]:
    """Start the runtime if needed (without waiting) and say whether it can place pods yet."""
    rt = runtime.current(settings, wait=False)
    if rt.metrics is None:
        metrics = "disabled"
    else:
        metrics = "fresh" if rt.metrics.latest().fresh(time.time(), rt.settings.prom_stale_after_s) else "stale"
    doc = {"cache": "synced" if rt.cache.synced else "listing", "metrics": metrics,
           "model_version": rt.decider.model_version, "replica": rt.settings.replica_name}
    return doc, rt.cache.synced


def _type_label(ce: AnyCloudEvent) -> str:
    """The metric label of an event type: known types only, so that a sender cannot grow the
    metric without bound with made-up types."""
    kind = ce["type"]
    return kind if isinstance(kind, str) and kind in KNOWN_EVENTS else "other"


def _key(ce: AnyCloudEvent) -> str:
    data = ce.get_data()
    meta = data.get("metadata") if isinstance(data, dict) else None
    if isinstance(meta, dict):
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return str(ce.get("subject") or "")
