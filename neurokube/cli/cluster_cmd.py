"""``neurokube cluster build|up|down|status|crds``: a real local control plane without containers.

Progress goes to stderr; stdout carries only the result (a path, or JSON with ``--json``), so
``export KUBECONFIG=$(neurokube cluster up)`` works.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from neurokube.cli.options import add_state_dir, positive_int, print_processes, resolve_state_dir, usage
from neurokube.cluster import adapter, build, control, functions, paths, schedconfig, workload
from neurokube.errors import TemporaryError

#: Exit status of `status` when no complete cluster is running (LSB "program is not running").
NOT_RUNNING = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "cluster", help="local Kubernetes control plane (etcd, kube-*, KWOK)",
        description="A real Kubernetes control plane on 127.0.0.1 with KWOK fake nodes; no containers.",
    )
    commands = group.add_subparsers(dest="cluster_command", metavar="COMMAND")
    group.set_defaults(func=lambda args: usage(group))

    p = commands.add_parser("build", help="build the pinned binaries (cached per pin set)")
    p.add_argument("--force", action="store_true", help="rebuild even if the binaries are cached")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_build)

    p = commands.add_parser("up", help="start the cluster (or print the running one)")
    _state_dir_arg(p)
    nodes = p.add_mutually_exclusive_group()
    nodes.add_argument("--nodes", type=positive_int, metavar="N",
                       help="N uniform nodes of 32 CPU / 128 GiB (default 10)")
    nodes.add_argument("--nodes-from", type=Path, metavar="CSV",
                       help="nodes from a CSV of name,cpu_milli,memory_mib (allocatable)")
    p.add_argument("--max-pods", type=positive_int, default=workload.DEFAULT_MAX_PODS,
                   help=f"pods allocatable per node (default {workload.DEFAULT_MAX_PODS})")
    p.add_argument("--extender-url", metavar="URL", help="add a scheduler extender at URL")
    p.add_argument("--extender-verbs", default="filter,prioritize",
                   help="comma-separated extender verbs: filter, prioritize, bind (default filter,prioritize)")
    p.add_argument("--extender-weight", type=positive_int, default=1, help="extender prioritize weight (default 1)")
    p.add_argument("--extender-node-cache-capable", action="store_true",
                   help="send node names only, not whole Node objects")
    p.add_argument("--no-adapter", action="store_true", help="do not start the Knative receive adapter")
    p.add_argument("--sink", default=adapter.DEFAULT_SINK,
                   help=f"where the receive adapter sends CloudEvents (default {adapter.DEFAULT_SINK})")
    p.add_argument("--knative-crds", action="store_true", help="also install the Knative CRDs")
    _functions_args(p)
    p.add_argument("--json", action="store_true",
                   help='print {"kubeconfig", "apiserver", "nodes", "functions"} as JSON')
    p.set_defaults(func=cmd_up)

    p = commands.add_parser("down", help="stop every process the cluster started")
    _state_dir_arg(p)
    p.add_argument("--purge", action="store_true", help="also delete the state directory (certificates, logs)")
    p.set_defaults(func=cmd_down)

    p = commands.add_parser("status", help=f"what runs (exit status {NOT_RUNNING} if the cluster is not up)")
    _state_dir_arg(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--kubeconfig", metavar="FILE[:FILE...]",
                   help="ask the apiserver as this kubeconfig's user (any kubeconfig the official client reads: "
                        "tokens, exec credential plugins, KUBECONFIG-style lists); default: the cluster's admin")
    p.set_defaults(func=cmd_status)

    p = commands.add_parser("crds", help="install the Knative Serving and Eventing CRDs into the running cluster")
    _state_dir_arg(p)
    p.set_defaults(func=cmd_crds)


# -- handlers ----------------------------------------------------------------------------------


def _handler(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report file-system failures (permissions, full disk) as one line, not a traceback."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise TemporaryError(f"{where}{exc.strerror or exc}") from None

    return wrapper


@_handler
def cmd_build(args: argparse.Namespace) -> int:
    binaries = build.ensure_built(sys.stderr, force=args.force)
    if args.json:
        print(json.dumps({"bin_dir": str(binaries.root), "crds_dir": str(binaries.crds_dir)}))
    else:
        print(binaries.root)
    return 0


@_handler
def cmd_up(args: argparse.Namespace) -> int:
    if args.nodes_from:
        nodes = workload.read_nodes_csv(args.nodes_from, max_pods=args.max_pods)
    else:
        nodes = workload.uniform_nodes(args.nodes or 10, max_pods=args.max_pods)
    extender = None
    if args.extender_url:
        verbs = tuple(v.strip() for v in args.extender_verbs.split(",") if v.strip())
        extender = schedconfig.Extender(args.extender_url, verbs, args.extender_weight,
                                        args.extender_node_cache_capable)
    options = control.UpOptions(
        state_dir=_state_dir(args), nodes=nodes, extender=extender, start_adapter=not args.no_adapter,
        sink=args.sink, knative_crds=args.knative_crds, functions=_functions_options(args),
    )
    result = control.up(options)
    record = result.record
    if result.already_running:
        print(f"cluster already running in {record.state_dir} ({record.nodes} nodes); "
              "options of this call are ignored, `down` first to change them", file=sys.stderr)
    if args.json:
        print(json.dumps({"kubeconfig": record.kubeconfig, "apiserver": record.apiserver, "nodes": record.nodes,
                          "functions": record.functions}))
    else:
        print(record.kubeconfig)
    return 0


@_handler
def cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    outcomes = control.down(state_dir, purge=args.purge)
    if not outcomes:
        print(f"no cluster running in {state_dir}", file=sys.stderr)
    return 0


@_handler
def cmd_status(args: argparse.Namespace) -> int:
    doc = control.status(_state_dir(args), kubeconfig=args.kubeconfig)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_status(doc)
    return 0 if doc["running"] else NOT_RUNNING


@_handler
def cmd_crds(args: argparse.Namespace) -> int:
    for name in control.install_crds(_state_dir(args)):
        print(name)
    return 0


# -- `up --functions` (neurokube/cluster/functions.py) ----------------------------------------


def _functions_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("live functions (docs/FUNCTIONS.md)")
    g.add_argument("--functions", action="store_true",
                   help="also run the binder, extender and sweeper as local processes; the receive adapter "
                        "delivers to the binder, a timer pings the sweeper every minute")
    g.add_argument("--functions-extender", action="store_true",
                   help="with --functions: configure kube-scheduler to call the extender "
                        "(prioritize only, as deploy/knative/kube-scheduler/extender-config.yaml)")
    g.add_argument("--functions-weight", type=positive_int, default=5, help="extender weight (default 5)")
    g.add_argument("--model-dir", type=Path, help="with --functions: the champion model directory")
    g.add_argument("--prometheus-url", help="with --functions: Prometheus for node metrics")


def _functions_options(args: argparse.Namespace) -> functions.FunctionsOptions | None:
    if not args.functions:
        return None
    return functions.FunctionsOptions(extender=args.functions_extender, extender_weight=args.functions_weight,
                                      model_dir=args.model_dir.absolute() if args.model_dir else None,
                                      prometheus_url=args.prometheus_url)


# -- helpers -----------------------------------------------------------------------------------


def _print_status(doc: dict) -> None:
    if not doc["components"]:
        print(f"no cluster in {doc['state_dir']}")
        return
    print(f"cluster in {doc['state_dir']}: {'running' if doc['running'] else 'NOT fully running'}")
    print(f"  apiserver   {doc['apiserver']}")
    print(f"  kubeconfig  {doc['kubeconfig']}")
    if "nodes" in doc:
        nodes = doc["nodes"]
        print(f"  nodes       {nodes['total']}, {nodes['ready']} Ready, {nodes['schedulable']} schedulable")
    if doc.get("apiserver_error"):
        print(f"  apiserver error: {doc['apiserver_error']}")
    if doc.get("sink"):
        print(f"  event sink  {doc['sink']}")
    for name, url in (doc.get("functions") or {}).items():
        print(f"  {name:<11} {url}")
    print_processes(doc["components"], 24)


def _state_dir_arg(parser: argparse.ArgumentParser) -> None:
    add_state_dir(parser, "certificates, configs, pids and logs", "$NEUROKUBE_STATE_DIR or ~/.local/state/neurokube/cluster")


def _state_dir(args: argparse.Namespace) -> Path:
    return resolve_state_dir(args, paths.default_state_dir)
