"""``neurokube trace build|synth|info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neurokube.cli.options import float_range, fraction, int_range, mapping, output_dir, seed
from neurokube.cli.outputs import Outputs
from neurokube.errors import InputError
from neurokube.trace.assemble import ArrivalSettings

MAX_HOURS = 10_000.0
"""Longest trace ``--hours`` makes (about 14 months; the reader takes times up to 10^8 s)."""
MAX_NODES = 100_000
MAX_WORKLOADS = 1_000_000
PROFILE_FILES = ("profiles.csv", "profiles.csv.gz")


def register(sub: argparse._SubParsersAction) -> None:
    trace = sub.add_parser("trace", help="build, synthesise or inspect v1 traces")
    tsub = trace.add_subparsers(dest="trace_command", metavar="ACTION", required=True)

    build = tsub.add_parser("build", help="build a v1 trace from the openb pod mix and Bitbrains usage")
    build.add_argument("--openb-pods", type=Path, required=True, help="openb_pod_list_*.csv")
    build.add_argument("--openb-nodes", type=Path, required=True, help="openb_node_list_all_node.csv")
    build.add_argument("--bitbrains", type=Path, required=True, help="folder of Bitbrains VM files")
    build.add_argument("--out", type=output_dir, required=True, help="output trace directory")
    _arrival_flags(build)
    build.add_argument("--nodes", type=int_range(1, MAX_NODES), default=60,
                       help="nodes sampled from openb (default 60)")
    build.add_argument("--node-min-cpu-milli", type=int_range(0, 10**9), default=0,
                       help="only sample nodes with at least this CPU (default 0: any)")
    build.add_argument("--workloads", type=int_range(1, MAX_WORKLOADS), default=400,
                       help="openb pods used as workload templates (default 400)")
    build.add_argument("--qos-map", type=mapping,
                       default={"LS": "Guaranteed", "Guaranteed": "Guaranteed", "Burstable": "Burstable",
                                "BE": "Burstable"},
                       help="openb QoS -> Kubernetes QoS (default LS=Guaranteed,BE=Burstable,"
                            "Burstable=Burstable,Guaranteed=Guaranteed)")
    build.add_argument("--best-effort-share", type=fraction, default=0.05,
                       help="share of workloads made BestEffort (default 0.05)")
    build.add_argument("--burstable-cpu-limit-ratio", type=float_range(0.0, 1000.0), default=2.0,
                       help="Burstable CPU limit / request, 0 for none (default 2)")
    build.add_argument("--burstable-memory-limit-ratio", type=float_range(0.0, 1000.0), default=1.5,
                       help="Burstable memory limit / request, 0 for none (default 1.5)")
    build.add_argument("--cpu-level", type=mapping, default={},
                       help="per QoS mean CPU usage/request as MEDIAN:SIGMA of a lognormal, e.g. "
                            "Guaranteed=0.4:0.5,Burstable=0.6:0.6,BestEffort=0.3:0.7 (the defaults)")
    build.add_argument("--memory-level", type=mapping, default={},
                       help="the same for memory (defaults Guaranteed=0.6:0.3,Burstable=0.7:0.3,"
                            "BestEffort=0.3:0.5)")
    build.add_argument("--profile-days", type=float_range(0.0, 1000.0, low_open=True), default=7.0,
                       help="days of each VM series kept as its usage shape (default 7)")
    build.add_argument("--peak-cap", type=float_range(0.0, 1000.0, low_open=True), default=5.0,
                       help="clip usage shapes at this multiple of their mean (default 5)")
    build.set_defaults(func=_build)

    synth = tsub.add_parser("synth", help="make a realistic trace without input data")
    synth.add_argument("--out", type=output_dir, required=True, help="output trace directory")
    _arrival_flags(synth)
    synth.add_argument("--nodes", type=int_range(1, MAX_NODES), default=40, help="number of nodes (default 40)")
    synth.add_argument("--workloads", type=int_range(1, MAX_WORKLOADS), default=200,
                       help="distinct workloads (default 200)")
    synth.set_defaults(func=_synth)

    info = tsub.add_parser("info", help="validate a trace and summarise it")
    info.add_argument("trace", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)


def _arrival_flags(p: argparse.ArgumentParser) -> None:
    d = ArrivalSettings()
    p.add_argument("--hours", type=float_range(0.0, MAX_HOURS, low_open=True), default=d.hours,
                   help=f"trace length, at most {MAX_HOURS:g} (default {d.hours:g})")
    p.add_argument("--target-load", type=float_range(0.0, 2.0, low_open=True), default=d.target_load,
                   help=f"mean requested CPU / allocatable CPU, at most 2 (default {d.target_load:g})")
    p.add_argument("--wave-amplitude", type=fraction, default=d.wave_amplitude,
                   help=f"daily wave in the arrival rate (default {d.wave_amplitude:g})")
    p.add_argument("--warmup-hours", type=float_range(0.0, MAX_HOURS), default=d.warmup_hours,
                   help=f"pods already running at time 0 come from this warm-up (default {d.warmup_hours:g})")
    p.add_argument("--seed", type=seed, default=d.seed, help="random seed (default 0)")


def _arrivals(args: argparse.Namespace) -> ArrivalSettings:
    return ArrivalSettings(hours=args.hours, target_load=args.target_load,
                           wave_amplitude=args.wave_amplitude, warmup_hours=args.warmup_hours,
                           seed=args.seed)


def _levels(text: dict[str, str], defaults: dict, flag: str) -> dict:
    from neurokube.trace.build import QOS_INDEX, UsageLevel

    out = dict(defaults)
    for qos, spec in text.items():
        if qos not in QOS_INDEX:
            raise InputError(f"unknown QoS class {qos!r}", flag, f"one of {', '.join(QOS_INDEX)}")
        median, _, sigma = spec.partition(":")
        try:
            level = UsageLevel(float(median), float(sigma or 0.0))
        except ValueError:
            raise InputError(f"{spec!r} is not MEDIAN:SIGMA", flag) from None
        if not (0 < level.median <= 100 and 0 <= level.sigma <= 10):
            raise InputError(f"{spec!r} is out of range", flag, "MEDIAN in (0, 100], SIGMA in [0, 10]; no inf or nan")
        out[qos] = level
    return out


def _build(args: argparse.Namespace) -> int:
    from neurokube.adapters.rawdata import read_bitbrains, read_openb_nodes, read_openb_pods
    from neurokube.adapters.trace_files import write_trace
    from neurokube.trace.build import QOS_INDEX, BuildSettings, build_trace

    bad = [v for v in args.qos_map.values() if v not in QOS_INDEX]
    if bad:
        raise InputError(f"unknown QoS class {bad[0]!r}", "--qos-map", f"one of {', '.join(QOS_INDEX)}")
    d = BuildSettings()
    settings = BuildSettings(
        arrivals=_arrivals(args), nodes=args.nodes, node_min_cpu_milli=args.node_min_cpu_milli,
        workloads=args.workloads, qos_map=args.qos_map, best_effort_share=args.best_effort_share,
        burstable_cpu_limit_ratio=args.burstable_cpu_limit_ratio,
        burstable_memory_limit_ratio=args.burstable_memory_limit_ratio,
        cpu_level=_levels(args.cpu_level, d.cpu_level, "--cpu-level"),
        memory_level=_levels(args.memory_level, d.memory_level, "--memory-level"),
        profile_days=args.profile_days, peak_cap=args.peak_cap,
    )
    trace = build_trace(args.out.name, read_openb_pods(args.openb_pods), read_openb_nodes(args.openb_nodes),
                        read_bitbrains(args.bitbrains), settings)
    with Outputs() as out:
        write_trace(trace, out.directory(args.out, "--out", stale=PROFILE_FILES))
    print(f"wrote {args.out}: {len(trace.nodes)} nodes, {len(trace.pods)} pods, {len(trace.profiles)} profiles")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from neurokube.adapters.trace_files import write_trace
    from neurokube.trace.synth import SynthSettings, synth_trace

    trace = synth_trace(args.out.name, SynthSettings(arrivals=_arrivals(args), nodes=args.nodes,
                                                     workloads=args.workloads))
    with Outputs() as out:
        write_trace(trace, out.directory(args.out, "--out", stale=PROFILE_FILES))
    print(f"wrote {args.out}: {len(trace.nodes)} nodes, {len(trace.pods)} pods, {len(trace.profiles)} profiles")
    return 0


def _info(args: argparse.Namespace) -> int:
    from neurokube.adapters.trace_files import read_trace
    from neurokube.trace.summary import summarise

    summary = summarise(read_trace(args.trace))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:28s} {value}")
    return 0
