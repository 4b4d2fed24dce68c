"""``neurokube`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; the handler it
installs with ``set_defaults(func=...)`` takes the parsed ``argparse.Namespace`` and returns an
exit code. Errors are mapped here, and only here: a :class:`PermanentError` prints one line and
exits 2, a :class:`TemporaryError` exits 1; nothing prints a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from neurokube import __version__
from neurokube.cli import (
    bench_cmd,
    cluster_cmd,
    loop_cmd,
    nightly_cmd,
    recommend_cmd,
    replay_cmd,
    stack_cmd,
    trace_cmd,
    train_cmd,
)
from neurokube.errors import ApiStatusError, PermanentError, TemporaryError

#: Modules that contribute sub-commands, in help order.
COMMAND_MODULES = (trace_cmd, replay_cmd, train_cmd, nightly_cmd, loop_cmd, recommend_cmd, cluster_cmd, stack_cmd,
                   bench_cmd)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit code 2 (its default too)."""

    def error(self, message: str) -> None:  # pragma: no cover - exercised through the CLI tests
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def one_line(exc: BaseException | str) -> str:
    """The error's message on one line: a newline in a path or a value is shown escaped."""
    return str(exc).replace("\r", "\\r").replace("\n", "\\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neurokube", description="A learned, load-aware scheduler for Kubernetes.")
    parser.add_argument("--version", action="version", version=f"neurokube {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, third-party libraries' included (MLflow, urllib3, ...)")
    parser.add_argument("--log-format", choices=("auto", "text", "json"), default="auto",
                        help="log lines on stderr: text for a person, JSON lines for a machine; "
                             "auto (default) is text on a terminal, JSON otherwise")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from neurokube.logs import choose_format, configure_logging

    if not args.verbose:  # MLflow sets its logger's level when first imported, from this variable
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    configure_logging(debug=args.verbose, fmt=choose_format(args.log_format, sys.stderr.isatty()))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PermanentError as exc:
        print(f"neurokube: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except ApiStatusError as exc:
        if exc.permanent:  # the apiserver refused (403, 422, ...): retrying the command cannot help
            print(f"neurokube: error: the apiserver refused: {one_line(exc)}", file=sys.stderr)
            return 2
        print(f"neurokube: unavailable: {one_line(exc)}", file=sys.stderr)
        return 1
    except TemporaryError as exc:
        print(f"neurokube: unavailable: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("neurokube: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
