"""Every setting of the learning loop, in one place (typed, documented, validated on creation).

The Kubernetes Job (``python -m pipelines.nightly``) reads them from flags; ``neurokube nightly``
builds them from its flags. Only the snapshot function's settings come from the environment,
declared and read with :mod:`neurokube.envsettings` (:func:`snapshot_function_settings`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from neurokube import envsettings
from neurokube.envsettings import setting
from neurokube.errors import InputError
from neurokube.learning.fit import FitSettings
from neurokube.model.reward import RewardWeights

DAY_S = 86400
HOUR_S = 3600


_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_MATCHER = re.compile(rf'\s*({_LABEL_NAME})\s*(=~|!~|!=|=)\s*"((?:[^"\\\n]|\\.)*)"\s*(?:,|$)')


@dataclass(frozen=True)
class Matcher:
    """One PromQL label matcher, ``name op "value"`` (``value`` unescaped)."""

    name: str
    op: str
    value: str

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def parse_selector(text: str, where: str = "snapshot settings") -> tuple[Matcher, ...]:
    """The label matchers of ``text`` (PromQL's inside-the-braces syntax, without the braces:
    ``cluster="prod-eu-1"`` or ``cluster=~"prod-.*",env!="test"``); "" selects everything.

    A malformed selector is an :class:`InputError` naming the offending part, never a PromQL
    error at the first query (or, worse, a query that silently selects something else)."""
    matchers, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _MATCHER.match(text, pos)
        if m is None:
            raise InputError(f"malformed series selector {text!r}", where=where,
                             why=f"at {text[pos:][:40]!r}: expected label=\"value\" (or !=, =~, !~), "
                                 "comma-separated, e.g. cluster=\"prod-eu-1\"")
        name, op, raw = m.groups()
        try:
            value = raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError as exc:
            raise InputError(f"malformed series selector {text!r}", where=where, why=f"{raw!r}: {exc}") from None
        if name == "__name__":
            raise InputError(f"series selector {text!r} names the metric", where=where,
                             why="select series by their labels; the queries name the metrics")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise InputError(f"series selector {text!r} has a bad regular expression", where=where,
                                 why=f"{value!r}: {exc}") from None
        matchers.append(Matcher(name, op, value))
        pos = m.end()
        if text[m.end() - 1:m.end()] == "," and not text[m.end():].strip():
            raise InputError(f"malformed series selector {text!r}", where=where, why="ends with a comma")
    return tuple(matchers)


def selector_labels(text: str) -> dict[str, str]:
    """The labels a writer must attach to its series for ``text`` to select them: its equality
    matchers. A selector with another kind of matcher has no such set (InputError)."""
    matchers = parse_selector(text)
    other = [m.render() for m in matchers if m.op != "="]
    if other:
        raise InputError(f"series selector {text!r} cannot be written as labels", where="snapshot settings",
                         why=f"{', '.join(other)} is not an equality; a writer needs label=\"value\" only")
    return {m.name: m.value for m in matchers}


@dataclass(frozen=True)
class PrometheusQueries:
    """PromQL giving one value per node and source for the snapshot columns.

    Templates: ``{selector}`` (the series selector's matchers, a trailing comma included when there
    are any) inside every vector selector's braces, ``{by}`` (``node`` and :attr:`source_labels`)
    and ``{rate_window}``. A query without ``{selector}`` is refused when a selector is set: it would
    read every cluster's series."""

    cpu_used_milli: str = "sum by ({by}) (rate(container_cpu_usage_seconds_total{{{selector}}}[{rate_window}])) * 1000"
    """CPU in use per node, millicores. cAdvisor's per-container counters, so usage above capacity
    (contention) shows; node-exporter's idle time saturates at 100 %."""
    cpu_alloc_milli: str = 'sum by ({by}) (kube_node_status_allocatable{{{selector}resource="cpu"}}) * 1000'
    """Allocatable CPU per node, millicores (kube-state-metrics)."""
    mem_used_mib: str = "sum by ({by}) (container_memory_working_set_bytes{{{selector}}}) / 1048576"
    """Working set per node, MiB."""
    rate_window: str = "3m"
    """Range of ``rate()``: at least two samples of the scrape (or backfill) step."""
    node_labels: tuple[str, ...] = ("node", "instance")
    """Label naming the node in a result series; the first one present wins."""
    selector: str = ""
    """This cluster's series: PromQL label matchers, e.g. ``cluster="prod-eu-1"`` (what Prometheus'
    ``external_labels`` or the scrape config attach). "" reads every series: right only when the
    Prometheus serves one cluster."""
    source_labels: tuple[str, ...] = ("cluster", "job")
    """Labels kept apart when summing per node. Two result series for one node (two clusters with
    the same node names, or two jobs scraping one node) are refused as duplicates, naming both,
    instead of being summed into one impossible node."""
    pod_cpu_used_milli: str = ('sum by ({pod_by}) (rate(container_cpu_usage_seconds_total'
                               '{{{selector}{pod_selector}container!=""}}[{rate_window}])) * 1000')
    """CPU in use per pod and node, millicores (cAdvisor): what attributes a live decision's outcome."""
    pod_mem_used_mib: str = ('sum by ({pod_by}) (container_memory_working_set_bytes'
                             '{{{selector}{pod_selector}container!=""}}) / 1048576')
    """Working set per pod and node, MiB."""
    pod_selector: str = ""
    """More matchers for the per-pod queries only: the pods the scheduler places. DaemonSet pods run
    on every node, so with them no pod is ever alone on its node (e.g. ``namespace!="kube-system"``)."""

    def __post_init__(self) -> None:
        parse_selector(self.selector)
        if not re.fullmatch(r"\d+(ms|s|m|h|d|w|y)", self.rate_window):
            raise InputError(f"rate window {self.rate_window!r} is not a Prometheus duration like 3m",
                             "snapshot settings")
        for name in self.source_labels + self.node_labels:
            if not re.fullmatch(_LABEL_NAME, name):
                raise InputError(f"{name!r} is not a Prometheus label name", "snapshot settings")
        parse_selector(self.pod_selector, "snapshot settings (pod selector)")
        if self.selector.strip() or self.pod_selector.strip():
            missing = [c for c in COLUMNS + POD_QUERIES if "{selector}" not in getattr(self, c)]
            missing += [c for c in POD_QUERIES if self.pod_selector.strip() and "{pod_selector}" not in getattr(self, c)
                        and c not in missing]
            if missing:
                raise InputError(f"the {', '.join(missing)} quer{'ies' if len(missing) > 1 else 'y'} would ignore "
                                 f"the series selector {self.selector!r}", "snapshot settings",
                                 "put {selector} inside the braces of every vector selector")

    def rendered(self) -> dict[str, str]:
        matchers = parse_selector(self.selector)
        selector = "".join(m.render() + "," for m in matchers)
        by = ", ".join(dict.fromkeys(("node", *self.source_labels)))
        return {column: getattr(self, column).format(rate_window=self.rate_window, selector=selector, by=by)
                for column in COLUMNS}

    def rendered_pods(self) -> dict[str, str]:
        """The per-pod queries (``cpu_used_milli``, ``mem_used_mib``), summed by node, namespace, pod and source."""
        selector = "".join(m.render() + "," for m in parse_selector(self.selector))
        pods = "".join(m.render() + "," for m in parse_selector(self.pod_selector))
        by = ", ".join(dict.fromkeys(("node", "namespace", "pod", *self.source_labels)))
        return {column: getattr(self, f"pod_{column}").format(rate_window=self.rate_window, selector=selector,
                                                              pod_selector=pods, pod_by=by)
                for column in ("cpu_used_milli", "mem_used_mib")}


COLUMNS = ("cpu_used_milli", "cpu_alloc_milli", "mem_used_mib")
POD_QUERIES = ("pod_cpu_used_milli", "pod_mem_used_mib")


@dataclass(frozen=True)
class SnapshotSettings:
    step_s: int = 60
    """Resolution of the snapshot (Prometheus ``query_range`` step), seconds."""
    queries: PrometheusQueries = field(default_factory=PrometheusQueries)
    spool_dir: Path | None = None
    """Where partitions wait while the object store is down; delivered by the next run."""
    timeout_s: float = 30.0
    """Timeout of one Prometheus query, seconds."""

    def __post_init__(self) -> None:
        if self.step_s <= 0 or HOUR_S % self.step_s:
            raise InputError("the snapshot step must divide an hour", "snapshot settings", f"got {self.step_s} s")


@dataclass(frozen=True)
class WorldSettings:
    """The simulated cluster of ``neurokube nightly`` when no trace is given (a synthetic one)."""

    nodes: int = 10
    workloads: int = 60
    target_load: float = 0.5
    seed: int = 0
    epsilon: float = 0.1
    """Exploration around the serving policy while logging decisions (gives OPE its propensities)."""
    eval_hours: float = 6.0
    """Length of the held-out trace every night's candidate is replayed on."""


@dataclass(frozen=True)
class PromotionRule:
    """A candidate becomes ``champion`` only if, replayed on the held-out trace, its cost
    (``weights.cost(contention_core_s, node_hours)``) is below the incumbent's by at least
    ``min_relative_gain`` and its pending pod-seconds are at most ``max_pending_ratio`` times the
    incumbent's; and if, when the logged days give a rollout estimate
    (:mod:`neurokube.learning.rollout`), its estimated cost there is at most
    ``1 + rollout_max_relative_loss`` times the incumbent's. The incumbent is the current champion,
    or the default policy when there is none (that is what serves then)."""

    min_relative_gain: float = 0.01
    max_pending_ratio: float = 1.10
    rollout_max_relative_loss: float | None = 0.0
    """How much worse than the incumbent's the candidate's rollout-estimated cost on the logged days
    may be, as a fraction of the incumbent's (0: no worse). None: the estimate is reported, never
    used. A night without an estimate (no per-pod usage in the logs) is judged on the replay alone."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_relative_gain < 1 or self.max_pending_ratio < 1:
            raise InputError("bad promotion rule", "promotion settings", str(self))
        if self.rollout_max_relative_loss is not None and not 0 <= self.rollout_max_relative_loss < 1:
            raise InputError("bad promotion rule", "promotion settings",
                             f"rollout_max_relative_loss must be in [0, 1) or None, "
                             f"got {self.rollout_max_relative_loss}")


# --- Outcome attribution (issue 12, item 3; pipelines/attribute.py) -----------------------------
@dataclass(frozen=True)
class AttributionSettings:
    """Where the night takes each decision's outcome from (docs/LEARNING_LOOP.md, "Outcomes").

    A decision with a row in the outcomes table (a simulated day: the simulator's own attribution)
    keeps it; one without (a live decision) is attributed from the usage snapshots."""

    replace_simulated: bool = False
    """Attribute every decision from the snapshots, ignoring the outcomes table (to check the live
    attribution on simulated days, or to train simulated and live decisions on one definition)."""
# --- end of outcome attribution --------------------------------------------------------------------


@dataclass(frozen=True)
class NightlySettings:
    model_name: str = "neurokube-placement"
    alias: str = "champion"
    experiment: str = "neurokube-nightly"
    lookback_days: int = 7
    """Train on the decision logs of this many days up to the night."""
    fit: FitSettings = field(default_factory=lambda: FitSettings(rounds=40, min_data_in_leaf=20))
    weights: RewardWeights = field(default_factory=RewardWeights)
    promotion: PromotionRule = field(default_factory=PromotionRule)
    world: WorldSettings = field(default_factory=WorldSettings)
    ope_sample: int = 5000
    """Logged decisions drawn for the off-policy estimate."""
    attribution: AttributionSettings = field(default_factory=AttributionSettings)
    rollout_days: int = 1
    """The most recent days of the lookback that the rollout estimate rebuilds from the logs and
    replays every policy on (neurokube/learning/rollout.py); 0: no rollout estimate."""

    def __post_init__(self) -> None:
        if self.lookback_days <= 0:
            raise InputError("lookback_days must be positive", "nightly settings", str(self.lookback_days))
        if not 0 <= self.rollout_days <= self.lookback_days:
            raise InputError("rollout_days must be in 0..lookback_days", "nightly settings",
                             f"{self.rollout_days} of {self.lookback_days}")


@dataclass(frozen=True)
class SnapshotFunctionSettings:
    """The snapshot function (functions/snapshot): every PingSource tick rewrites the last ``hours``
    completed hours and the current hour so far. Read from the environment by
    :func:`snapshot_function_settings`; every problem is refused at once, naming its variable (the
    function's Prometheus connection and authentication are the live functions' own settings,
    neurokube/live/settings.py). :attr:`snapshot` is the snapshot step's settings they make."""

    store: str = setting("NEUROKUBE_STORE", "",
                         "object store of the partitions: a directory, `file://`, `minio://` or `minios://` (keys "
                         "from `NEUROKUBE_STORE_ACCESS_KEY` / `_SECRET_KEY`, CA from `NEUROKUBE_STORE_CA_BUNDLE`)",
                         shown="(required)")
    selector: str = setting("NEUROKUBE_SNAPSHOT_SELECTOR", "",
                            "this cluster's series, PromQL label matchers without braces (e.g. "
                            "`cluster=\"prod-eu-1\"`); empty: every series")
    hours: int = setting("NEUROKUBE_SNAPSHOT_HOURS", 2,
                         "completed hours rewritten by every tick besides the current one (0-24), so a partition "
                         "finishes even when the ticks of a whole hour failed")
    step_s: int = setting("NEUROKUBE_SNAPSHOT_STEP_S", 60, "the partitions' step, seconds (divides an hour)")
    rate_window: str = setting("NEUROKUBE_SNAPSHOT_RATE_WINDOW", "3m",
                               "range of `rate()` over cAdvisor's counters: at least two scrapes")
    max_event_age_s: float = setting("NEUROKUBE_SNAPSHOT_MAX_EVENT_AGE_S", 3600.0,
                                     "older ticks are refused (400): a late redelivery must not rewrite hours "
                                     "whose samples Prometheus may no longer hold")
    spool_dir: Path = setting("NEUROKUBE_SNAPSHOT_SPOOL_DIR", Path("/tmp/neurokube-snapshot-spool"),
                              "partitions waiting for the store; the next tick delivers them")
    max_event_skew_s: float = setting(None, 300.0,
                                      "a ping more than this in the future is refused (400): the sender's clock "
                                      "is wrong")
    snapshot: SnapshotSettings = field(init=False)  # made of step_s, selector, rate_window and spool_dir

    def __post_init__(self) -> None:
        problems = []
        if not self.store.strip():
            problems.append("NEUROKUBE_STORE: must be set (the object store of the partitions)")
        try:
            parse_selector(self.selector, "NEUROKUBE_SNAPSHOT_SELECTOR")
        except InputError as exc:
            problems.append(str(exc))
        if not 0 <= self.hours <= 24:
            problems.append(f"NEUROKUBE_SNAPSHOT_HOURS: must be 0..24, got {self.hours}")
        if self.step_s <= 0 or HOUR_S % self.step_s:
            problems.append(f"NEUROKUBE_SNAPSHOT_STEP_S: must divide an hour, got {self.step_s}")
        if not re.fullmatch(r"\d+(ms|s|m|h|d|w|y)", self.rate_window):
            problems.append(f"NEUROKUBE_SNAPSHOT_RATE_WINDOW: {self.rate_window!r} is not a Prometheus duration "
                            "like 3m")
        if self.max_event_age_s <= 0:
            problems.append(f"NEUROKUBE_SNAPSHOT_MAX_EVENT_AGE_S: must be positive, got {self.max_event_age_s}")
        if self.max_event_skew_s < 0:
            problems.append(f"max_event_skew_s: must not be negative, got {self.max_event_skew_s}")
        envsettings.refuse(problems)
        queries = PrometheusQueries(selector=self.selector, rate_window=self.rate_window)
        object.__setattr__(self, "snapshot", SnapshotSettings(step_s=self.step_s, queries=queries,
                                                              spool_dir=self.spool_dir))


def snapshot_function_settings(env: Mapping[str, str]) -> SnapshotFunctionSettings:
    """The snapshot function's settings from ``env``; one InputError names every bad variable."""
    return envsettings.from_env(SnapshotFunctionSettings, env)
