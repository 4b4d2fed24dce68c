"""Log lines a person can read, and JSON for machines (neurokube/logs.py, the CLI's global options).

* the text formatter: time, level, logger, message, then the structured fields as key=value
  (quoted where a value has spaces, quotes or ``=``; floats shortened; a traceback below);
* the JSON formatter keeps the fields as keys;
* ``neurokube --log-format auto`` (the default) writes JSON when stderr is not a terminal and text
  when it is; ``--log-format json`` forces JSON on a terminal, ``text`` forces text on a pipe;
* a bad ``--log-format`` exits 2 with one line;
* third-party loggers (MLflow, urllib3, ...) are held at WARNING unless ``-v``, MLflow included
  when it is imported after the CLI configured logging.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurokube.cli import main as cli
from neurokube.logs import NOISY_LOGGERS, JsonFormatter, TextFormatter, choose_format, configure_logging

ROOT = Path(__file__).resolve().parents[2]
TOUCHED = ("", "neurokube", *NOISY_LOGGERS)


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch):
    """Each test configures logging (and may set MLFLOW_LOGGING_LEVEL); put both back afterwards."""
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    saved = {name: logging.getLogger(name).level for name in TOUCHED}
    handlers = list(logging.getLogger().handlers)
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def record(msg: str = "night %d trained", args: tuple = (2,), fields: dict | None = None,
           level: int = logging.INFO, exc_info=None) -> logging.LogRecord:
    rec = logging.LogRecord("neurokube.nightly", level, __file__, 1, msg, args, exc_info)
    rec.created = 1_700_000_000.25  # 2023-11-14 22:13:20 UTC
    if fields is not None:
        rec.fields = fields
    return rec


def text(rec: logging.LogRecord) -> str:
    formatter = TextFormatter()
    formatter.converter = time.gmtime  # the terminal's local time in use; UTC here to be deterministic
    return formatter.format(rec)


def test_text_line_has_time_level_logger_message_and_fields():
    line = text(record(fields={"rows": 1234, "auc": 0.8123456789, "served": "default",
                               "reason": "beats the default: cost 20,184.0", "promoted": True, "day": None}))
    assert line == ('22:13:20 INFO  neurokube.nightly  night 2 trained  rows=1234 auc=0.812346 served=default '
                    'reason="beats the default: cost 20,184.0" promoted=true day=null')


def test_text_line_quotes_what_would_be_ambiguous_and_appends_the_traceback():
    assert text(record(fields={"a": "x=y", "b": "", "c": 'say "hi"', "d": [1, "two"]})).endswith(
        '  a="x=y" b="" c="say \\"hi\\"" d=[1,"two"]')
    assert text(record(fields={})) == "22:13:20 INFO  neurokube.nightly  night 2 trained"
    assert text(record(level=logging.WARNING)).startswith("22:13:20 WARNING neurokube.nightly  ")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        lines = text(record(level=logging.ERROR, exc_info=sys.exc_info())).splitlines()
    assert lines[0] == "22:13:20 ERROR neurokube.nightly  night 2 trained"
    assert lines[1] == "Traceback (most recent call last):" and lines[-1] == "RuntimeError: boom"


def test_json_line_keeps_the_fields_as_keys():
    doc = json.loads(JsonFormatter().format(record(fields={"rows": 1234, "auc": 0.81})))
    assert doc == {"ts": 1_700_000_000.25, "level": "info", "logger": "neurokube.nightly",
                   "msg": "night 2 trained", "rows": 1234, "auc": 0.81}


def test_choose_format():
    assert choose_format("auto", is_tty=True) == "text"
    assert choose_format("auto", is_tty=False) == "json"
    assert choose_format("json", is_tty=True) == "json"
    assert choose_format("text", is_tty=False) == "text"
    with pytest.raises(ValueError):
        choose_format("yaml", is_tty=True)


def logged_line(argv: list[str], capsys, monkeypatch, tty: bool) -> str:
    """What one INFO event looks like on stderr after ``neurokube ARGV`` configured logging."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert cli.main(argv) == 2  # no command: help, exit 2; logging is configured before that
    capsys.readouterr()
    logging.getLogger("neurokube.nightly").info("night 2 trained", extra={"fields": {"rows": 1234}})
    [line] = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.parametrize("argv", [[], ["--log-format", "auto"]], ids=["default", "auto"])
def test_auto_is_json_when_stderr_is_not_a_terminal_and_text_when_it_is(argv, capsys, monkeypatch):
    doc = json.loads(logged_line(argv, capsys, monkeypatch, tty=False))
    assert doc["msg"] == "night 2 trained" and doc["rows"] == 1234 and doc["level"] == "info"
    line = logged_line(argv, capsys, monkeypatch, tty=True)
    assert " INFO  neurokube.nightly  night 2 trained  rows=1234" in line and not line.startswith("{")


def test_log_format_json_forces_json_on_a_terminal_and_text_forces_text_on_a_pipe(capsys, monkeypatch):
    doc = json.loads(logged_line(["--log-format", "json"], capsys, monkeypatch, tty=True))
    assert doc["logger"] == "neurokube.nightly" and doc["rows"] == 1234
    line = logged_line(["--log-format", "text"], capsys, monkeypatch, tty=False)
    assert line.endswith(" INFO  neurokube.nightly  night 2 trained  rows=1234")


def test_a_bad_log_format_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--log-format", "yaml", "trace", "info", "x"])
    assert exc.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("neurokube: error: argument --log-format: invalid choice: 'yaml'"), line


def test_third_party_loggers_are_quiet_by_default_and_heard_with_verbose(capsys, monkeypatch):
    for name in ("mlflow", "alembic"):  # as MLflow's import leaves them: their own level, INFO
        logging.getLogger(name).setLevel(logging.INFO)
    cli.main(["--log-format", "json"])
    for name in ("mlflow", "mlflow.store.db.utils", "urllib3.connectionpool", "alembic.runtime.migration",
                 "werkzeug", "matplotlib.font_manager", "lightgbm"):
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING), name
    assert logging.getLogger("neurokube.nightly").isEnabledFor(logging.INFO)
    assert not logging.getLogger("neurokube.nightly").isEnabledFor(logging.DEBUG)
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"

    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL")
    cli.main(["-v", "--log-format", "json"])
    for name in ("mlflow.store.db.utils", "urllib3.connectionpool", "neurokube.nightly"):
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert "MLFLOW_LOGGING_LEVEL" not in os.environ


def test_configure_logging_alone_still_quiets_libraries_for_the_functions():
    configure_logging()  # what functions/*/main.py call: JSON, no terminal detection
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    assert not logging.getLogger("urllib3").isEnabledFor(logging.INFO)


@pytest.mark.slow
def test_mlflow_imported_after_the_cli_configured_logging_stays_quiet():
    """MLflow sets its own logger's level when first imported; the CLI's default keeps that WARNING."""
    code = ("import logging, sys\n"
            "from neurokube.cli.main import main\n"
            "main(sys.argv[1:])\n"
            "import mlflow\n"
            "print(logging.getLogger('mlflow').getEffectiveLevel())\n")
    env_free = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    levels = [subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT,
                             env=env_free, timeout=120, check=True).stdout.split()[-1]
              for argv in (["--log-format", "json"], ["-v", "--log-format", "json"])]
    assert levels == [str(logging.WARNING), str(logging.INFO)]  # -v: MLflow's own default
