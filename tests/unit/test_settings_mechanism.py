"""One settings mechanism (neurokube/envsettings.py) for the live functions, the snapshot, trainer
and recommender functions and the data stack: fields declare their variable and meaning, values
are converted by type, every problem is reported at once naming its variable, computed defaults
and the class's own checks take part, and the docs carry the tables rendered from the code.
Production code reads the environment only where settings are declared."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest

from neurokube import envsettings
from neurokube.envsettings import setting
from neurokube.errors import InputError
from neurokube.live.settings import Settings as LiveSettings
from neurokube.stack.settings import StackSettings
from pipelines.settings import SnapshotFunctionSettings, snapshot_function_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Example:
    name: str = setting("EX_NAME", "web", "a name")
    count: int = setting("EX_COUNT", 3, "how many")
    ratio: float = setting("EX_RATIO", 0.5, "a share | of something")
    on: bool = setting("EX_ON", False, "a switch")
    where: Path | None = setting("EX_WHERE", None, "a file")
    mode: str = setting("EX_MODE", "a", "computed default", shown="`b` when EX_ON")
    family: tuple[str, ...] = setting("EX_ITEM_<N>", (), "a family",
                                      read=lambda env: tuple(v for k, v in sorted(env.items())
                                                             if k.startswith("EX_ITEM_")))
    internal: int = setting(None, 7, "set in code only", flag="--internal")
    derived: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.name == "refused":
            raise InputError("EX_NAME must not be refused", where="environment")
        object.__setattr__(self, "derived", self.count * 2)


@dataclass(frozen=True)
class Piped:
    q: str = setting("Q", "a|b", "a query")


def test_values_are_converted_by_type_and_blank_is_unset():
    s = envsettings.from_env(Example, {"EX_COUNT": " 5 ", "EX_RATIO": "1e-1", "EX_ON": "YES", "EX_WHERE": "~/f",
                                       "EX_NAME": "  ", "EX_ITEM_2": "b", "EX_ITEM_1": "a", "EX_INTERNAL": "9"})
    assert (s.count, s.ratio, s.on, s.name, s.family) == (5, 0.1, True, "web", ("a", "b"))
    assert s.where == Path("~/f").expanduser() and s.where.is_absolute()
    assert s.internal == 7 and s.derived == 10  # no variable for internal; derived by the class
    assert envsettings.from_env(Example, {}) == Example()
    for raw, value in (("1", True), ("on", True), ("true", True), ("0", False), ("off", False), ("No", False)):
        assert envsettings.from_env(Example, {"EX_ON": raw}).on is value


def test_every_bad_value_is_reported_at_once_naming_its_variable():
    with pytest.raises(InputError) as info:
        envsettings.from_env(Example, {"EX_COUNT": "2.5", "EX_RATIO": "nan", "EX_ON": "maybe", "EX_NAME": "x"})
    error = info.value
    assert error.where == "environment" and error.what == "invalid settings"
    assert error.why == ("EX_COUNT='2.5': expected an integer; EX_RATIO='nan': expected a finite number; "
                         "EX_ON='maybe': expected true or false")


def test_computed_defaults_raw_checks_and_the_class_own_checks():
    assert envsettings.from_env(Example, {}, defaults={"mode": "b"}).mode == "b"
    assert envsettings.from_env(Example, {"EX_MODE": "c"}, defaults={"mode": "b"}).mode == "c"
    with pytest.raises(InputError, match="EX_COUNT='x': expected an integer; EX_BOGUS: unknown"):
        envsettings.from_env(Example, {"EX_COUNT": "x", "EX_BOGUS": "1"},
                             extra=lambda env: [f"{k}: unknown" for k in env if k == "EX_BOGUS"])
    with pytest.raises(InputError, match=r"invalid settings \(EX_COUNT: must be even, got 3; EX_NAME: too short\)"):
        envsettings.from_env(Example, {"EX_NAME": "w"}, check=lambda s: [f"EX_COUNT: must be even, got {s.count}",
                                                                          "EX_NAME: too short"])
    with pytest.raises(InputError, match="EX_NAME must not be refused"):
        envsettings.from_env(Example, {"EX_NAME": "refused"})


def test_the_table_lists_the_variables_with_defaults_and_meanings():
    rows = envsettings.table(Example).splitlines()
    assert rows[:2] == ["| variable | default | meaning |", "|---|---|---|"]
    assert "| `EX_COUNT` | `3` | how many |" in rows
    assert "| `EX_RATIO` | `0.5` | a share | of something |" in rows  # meanings are written as Markdown
    assert "| `EX_WHERE` |  | a file |" in rows and "| `EX_MODE` | `b` when EX_ON | computed default |" in rows
    assert not any("internal" in r for r in rows) and len(rows) == 2 + 7
    assert envsettings.table(Example, "flag", "option").splitlines()[2] == "| `--internal` | `7` | set in code only |"
    assert "| `Q` | `a\\|b` | a query |" in envsettings.table(Piped)  # a default with a pipe stays in its cell


@pytest.mark.parametrize("cls", [LiveSettings, SnapshotFunctionSettings, StackSettings])
def test_every_setting_is_declared_and_documented(cls):
    declared = [f for f in fields(cls) if f.init]
    assert declared and all(f.metadata.get("doc") for f in declared), [f.name for f in declared
                                                                       if not f.metadata.get("doc")]
    names = [f.metadata["env"] for f in declared if f.metadata.get("env")]
    assert len(names) == len(set(names))


def test_the_snapshot_function_refuses_every_bad_variable_at_once():
    with pytest.raises(InputError) as info:
        snapshot_function_settings({"NEUROKUBE_SNAPSHOT_SELECTOR": "cluster=a", "NEUROKUBE_SNAPSHOT_HOURS": "30",
                                    "NEUROKUBE_SNAPSHOT_STEP_S": "7", "NEUROKUBE_SNAPSHOT_RATE_WINDOW": "soon"})
    for part in ("NEUROKUBE_STORE: must be set", "NEUROKUBE_SNAPSHOT_SELECTOR: malformed series selector",
                 "NEUROKUBE_SNAPSHOT_HOURS: must be 0..24, got 30", "NEUROKUBE_SNAPSHOT_STEP_S: must divide an hour",
                 "NEUROKUBE_SNAPSHOT_RATE_WINDOW: 'soon' is not a Prometheus duration"):
        assert part in str(info.value)
    s = snapshot_function_settings({"NEUROKUBE_STORE": "minios://m:9000/b", "NEUROKUBE_SNAPSHOT_STEP_S": "30",
                                    "NEUROKUBE_SNAPSHOT_SELECTOR": 'cluster="eu"'})
    assert (s.snapshot.step_s, s.snapshot.queries.selector, s.hours) == (30, 'cluster="eu"', 2)
    assert s.snapshot.spool_dir == Path("/tmp/neurokube-snapshot-spool") and s.max_event_age_s == 3600.0


@pytest.mark.parametrize("doc, rendered", [
    ("FUNCTIONS.md", envsettings.table(SnapshotFunctionSettings)),
    ("STACK.md", envsettings.table(StackSettings, "flag", "option")),
])
def test_the_documented_tables_are_the_code_s(doc, rendered):
    """The docs carry the tables as rendered from the code (regenerate them when a setting changes)."""
    assert rendered in (ROOT / "docs" / doc).read_text()


def test_the_stack_state_dir_default_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROKUBE_STATE_DIR", str(tmp_path))
    assert StackSettings().state_dir == tmp_path / "stack"
    monkeypatch.delenv("NEUROKUBE_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert StackSettings().state_dir == tmp_path / "xdg" / "neurokube" / "stack"


_READ = re.compile(r"os\.getenv\(|os\.environ\.get\(|os\.environ\[|environ\.get\(")
# the module where the live settings are declared (a family of variables, the host name); the
# other settings classes read through neurokube.envsettings and are passed the mapping
_SETTINGS_MODULES = {"neurokube/live/settings.py"}


def test_production_code_reads_the_environment_only_where_settings_are_declared():
    offenders = []
    for path in [*ROOT.glob("functions/*/main.py"), *ROOT.glob("pipelines/*.py"), *ROOT.glob("neurokube/live/*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel in _SETTINGS_MODULES:
            continue
        offenders += [f"{rel}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if _READ.search(line)]
    assert not offenders, offenders
