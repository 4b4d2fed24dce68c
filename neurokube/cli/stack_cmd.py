"""``neurokube stack install|up|down|status|backfill``: MinIO, Prometheus, MLflow and the metrics emulator.

Progress goes to stderr; stdout carries only the result, so
``neurokube stack status --json > stack.json`` gives clients their endpoints and credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from neurokube.cli.options import add_state_dir, positive_float, print_processes, resolve_state_dir, usage
from neurokube.emulator.filesource import FileSource
from neurokube.stack import backfill, build, control, install
from neurokube.stack.settings import StackSettings, default_state_dir

#: Exit status of `status` when the stack is not fully running (LSB "program is not running").
NOT_RUNNING = 3
_DEFAULTS = StackSettings.__dataclass_fields__


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "stack", help="local data stack (MinIO, Prometheus, MLflow, metrics emulator)",
        description="MinIO, Prometheus, the MLflow tracking server and a metrics emulator on 127.0.0.1; "
                    "no containers.",
    )
    commands = group.add_subparsers(dest="stack_command", metavar="COMMAND")
    group.set_defaults(func=lambda args: usage(group))

    p = commands.add_parser("install", help="install Prometheus (Debian package) and build MinIO (cached per pin)")
    p.add_argument("--force-build", action="store_true", help="rebuild MinIO even if it is cached")
    p.add_argument("--json", action="store_true", help="print the binaries' paths as JSON")
    p.set_defaults(func=cmd_install)

    p = commands.add_parser("up", help="start the stack (or print the running one)")
    _state_dir_arg(p)
    p.add_argument("--bucket", default=_DEFAULTS["bucket"].default,
                   help=f"MinIO bucket to create (default {_DEFAULTS['bucket'].default})")
    interval = _DEFAULTS["scrape_interval_s"].default
    p.add_argument("--scrape-interval", type=positive_float, default=interval, metavar="SECONDS",
                   help=f"Prometheus scrape interval (default {interval:g})")
    p.add_argument("--scrape-target", action="append", default=[], metavar="HOST:PORT",
                   help="an extra target for Prometheus to scrape (repeatable)")
    p.add_argument("--retention", default=_DEFAULTS["retention"].default,
                   help=f"Prometheus retention (default {_DEFAULTS['retention'].default})")
    p.add_argument("--emulator-snapshot", type=Path, metavar="JSON",
                   help="usage snapshot for the metrics emulator (default: a 3-node example in the state dir)")
    p.add_argument("--mlflow-workers", type=int, default=_DEFAULTS["mlflow_workers"].default,
                   help=f"MLflow server workers (default {_DEFAULTS['mlflow_workers'].default})")
    p.add_argument("--no-install", action="store_true", help="fail instead of installing Prometheus with apt-get")
    p.add_argument("--json", action="store_true", help="print the endpoints as `status --json` does")
    p.set_defaults(func=cmd_up)

    p = commands.add_parser("down", help="stop every process the stack started")
    _state_dir_arg(p)
    p.add_argument("--purge", action="store_true", help="also delete the state directory (data, credentials, logs)")
    p.set_defaults(func=cmd_down)

    p = commands.add_parser("status", help=f"what runs (exit status {NOT_RUNNING} if the stack is not up)")
    _state_dir_arg(p)
    p.add_argument("--json", action="store_true",
                   help='print {"minio": {endpoint, access_key, secret_key, bucket}, "prometheus": {url}, '
                        '"mlflow": {url}, "running": bool}')
    p.set_defaults(func=cmd_status)

    p = commands.add_parser("backfill", help="write a past window of emulated series into Prometheus")
    _state_dir_arg(p)
    p.add_argument("--snapshot", type=Path, required=True, metavar="JSON", help="usage snapshot to replay")
    p.add_argument("--hours", type=positive_float, required=True, help="length of the window")
    p.add_argument("--end", type=float, default=None, metavar="EPOCH_S",
                   help="end of the window, Unix seconds (default: now)")
    p.add_argument("--step", type=positive_float, default=60.0, metavar="SECONDS",
                   help="sampling step (default 60)")
    p.add_argument("--no-restart", action="store_true",
                   help="do not restart Prometheus; the window becomes queryable within about a minute")
    p.set_defaults(func=cmd_backfill)


# -- handlers ----------------------------------------------------------------------------------


def cmd_install(args: argparse.Namespace) -> int:
    tools = install.ensure_tools(sys.stderr, install=True)
    minio = build.ensure_minio(sys.stderr, force=args.force_build)
    doc = {"prometheus": str(tools.prometheus), "promtool": str(tools.promtool), "minio": str(minio.binary)}
    if args.json:
        print(json.dumps(doc))
    else:
        for name, path in doc.items():
            print(f"{name:<10} {path}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    settings = StackSettings(
        state_dir=_state_dir(args), bucket=args.bucket, scrape_interval_s=args.scrape_interval,
        scrape_targets=tuple(args.scrape_target), retention=args.retention,
        emulator_source=args.emulator_snapshot, mlflow_workers=args.mlflow_workers,
        install_prometheus=not args.no_install,
    )
    result = control.up(settings)
    if result.already_running:
        print(f"stack already running in {result.record.state_dir}; options of this call are ignored, "
              "`down` first to change them", file=sys.stderr)
    doc = control.status(settings.state_dir)
    if args.json:
        print(json.dumps(_client_doc(doc)))
    else:
        _print_status(doc)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    outcomes = control.down(state_dir, purge=args.purge)
    if not outcomes:
        print(f"no stack running in {state_dir}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    doc = control.status(_state_dir(args))
    if args.json:
        print(json.dumps(_client_doc(doc), indent=2))
    else:
        _print_status(doc)
    return 0 if doc["running"] else NOT_RUNNING


def cmd_backfill(args: argparse.Namespace) -> int:
    end = args.end if args.end is not None else time.time()
    result = backfill.backfill(_state_dir(args), FileSource(args.snapshot), end - args.hours * 3600, end, args.step,
                               restart=not args.no_restart)
    print(json.dumps({"start_s": result.start_s, "end_s": result.end_s, "samples": result.samples,
                      "blocks": result.blocks}))
    return 0


# -- helpers -----------------------------------------------------------------------------------


def _client_doc(doc: dict) -> dict:
    """The endpoints and credentials clients need, and whether they can be used now."""
    keys = ("minio", "prometheus", "mlflow")
    return {**{key: doc[key] for key in keys if key in doc}, "running": doc["running"]}


def _print_status(doc: dict) -> None:
    if not doc["components"]:
        print(f"no stack running in {doc['state_dir']}")
        return
    print(f"stack in {doc['state_dir']}: {'running' if doc['running'] else 'NOT fully running'}")
    print(f"  minio       {doc['minio']['endpoint']}  bucket {doc['minio']['bucket']}  "
          f"(credentials: `neurokube stack status --json`)")
    print(f"  prometheus  {doc['prometheus']['url']}  ({doc['prometheus_version']}, scrape every "
          f"{doc['scrape_interval']})")
    print(f"  mlflow      {doc['mlflow']['url']}")
    print(f"  emulator    {doc['emulator']['url']}  serving {doc['emulator']['source']}")
    print_processes(doc["components"], 11)


def _state_dir_arg(parser: argparse.ArgumentParser) -> None:
    add_state_dir(parser, "credentials, data, pids and logs", "$NEUROKUBE_STATE_DIR/stack or ~/.local/state/neurokube/stack")


def _state_dir(args: argparse.Namespace) -> Path:
    return resolve_state_dir(args, default_state_dir)
