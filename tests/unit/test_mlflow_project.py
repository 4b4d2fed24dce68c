"""The top-level ``mlflow/`` directory: the MLflow Project, the tracking server's manifests, the README.

* ``mlflow/`` is not a Python package, and ``import mlflow`` from the repository root is still the
  installed library;
* MLflow's own parser loads ``mlflow/MLproject``; every entry point names only declared
  parameters, every parameter is used, types are MLflow's; the program each command starts exists
  and lists every flag the command passes, and the command, run as ``mlflow run`` would run it (in
  ``mlflow/``, through bash), gets past argument parsing (it stops only at the unreachable server);
* the Job's ``--day`` takes ``YYYY-MM-DD`` or ``yesterday`` and refuses anything else;
* ``mlflow/deploy/kustomization.yaml`` lists every manifest in the directory, none hard-codes a
  namespace (kustomize sets it), the Deployment's image is a plain tag kustomize can rewrite;
* no boto3 in the repository's code or configuration;
* the README's registered models, experiments, aliases and tags are the code's.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from pipelines.forecasts import ForecastStepSettings
from pipelines.nightly import day_arg
from pipelines.settings import NightlySettings

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "mlflow"
DEPLOY = PROJECT / "deploy"
VENV_BIN = Path(sys.executable).parent
UNREACHABLE = "http://127.0.0.1:9"


def entry_points() -> dict:
    return yaml.safe_load((PROJECT / "MLproject").read_text())["entry_points"]


def program(command: str) -> list[str]:
    """``python -m MODULE [SUBCOMMAND]`` at the start of a command (the CLI's subcommand included)."""
    words = shlex.split(command)
    assert words[:2] == ["python", "-m"], command
    return words[:4] if words[2] == "neurokube.cli.main" else words[:3]


def test_mlflow_dir_does_not_shadow_the_library() -> None:
    assert not (PROJECT / "__init__.py").exists()
    found = subprocess.run([sys.executable, "-c", "import mlflow; print(mlflow.__file__)"], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": "."}, capture_output=True, text=True, check=True)
    assert "site-packages" in found.stdout and not found.stdout.startswith(str(PROJECT)), found.stdout


def test_mlflow_parses_the_project() -> None:
    from mlflow.projects import _project_spec

    project = _project_spec.load_project(str(PROJECT))
    assert project.name == "neurokube"
    assert set(entry_points()) == {"nightly", "loop"}
    for name, spec in entry_points().items():
        entry = project.get_entry_point(name)
        declared = set(spec["parameters"])
        assert set(re.findall(r"\{(\w+)\}", spec["command"])) == declared, name
        for param in entry.parameters.values():
            assert param.type in ("string", "float", "path", "uri"), (name, param.name, param.type)
    assert [p for p, v in entry_points()["nightly"]["parameters"].items() if not isinstance(v, dict)] == ["store"]


@pytest.mark.parametrize("name", ["nightly", "loop"])
def test_each_flag_of_a_command_is_one_its_program_takes(name: str) -> None:
    command = entry_points()[name]["command"]
    argv = program(command)
    assert importlib.util.find_spec(argv[2]) is not None, argv
    shown = subprocess.run([sys.executable, *argv[1:], "--help"], cwd=REPO, capture_output=True, text=True,
                           timeout=120, check=True).stdout
    flags = [w for w in shlex.split(command) if w.startswith("--")]
    assert flags and all(re.search(rf"(^|\s|\[){re.escape(f)}\b", shown) for f in flags), (flags, shown)


def run_as_mlflow_would(name: str, params: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    from mlflow.projects import _project_spec

    entry = _project_spec.load_project(str(PROJECT)).get_entry_point(name)
    command = entry.compute_command(params, str(tmp_path / "storage"))
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": UNREACHABLE}
    return subprocess.run(["bash", "-c", command], cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def test_the_nightly_command_gets_past_its_arguments(tmp_path: Path) -> None:
    done = run_as_mlflow_would("nightly", {"store": str(tmp_path / "store"), "day": "2024-03-08", "seed": "3"},
                               tmp_path)
    assert done.returncode == 1, done.stderr  # 2 would be a refused argument
    assert f"MLflow at {UNREACHABLE} is unavailable" in done.stderr
    refused = run_as_mlflow_would("nightly", {"store": str(tmp_path / "store"), "day": "08/03/2024"}, tmp_path)
    assert refused.returncode == 2 and "'08/03/2024' is not a day" in refused.stderr


def test_the_loop_command_gets_past_its_arguments(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    done = run_as_mlflow_would("loop", {"state_dir": str(state), "days": "1", "out": str(tmp_path / "out")},
                               tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"no running data stack in {state}" in done.stderr


def test_the_jobs_day_argument() -> None:
    import argparse
    import time

    assert day_arg("2024-03-08") == "2024-03-08"
    assert day_arg("yesterday") == time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    for bad in ("2024-02-30", "yesterday ", "2024-3-8x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a day"):
            day_arg(bad)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in DEPLOY.iterdir() if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)
    assert kustomization["namespace"] == "neurokube"
    docs = [d for name in listed for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "NetworkPolicy", "PersistentVolumeClaim", "Service"]
    assert all("namespace" not in d["metadata"] for d in docs)  # set by kustomize
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert re.fullmatch(r"[\w./-]+:v[\d.]+", container["image"]), container["image"]
    assert pod["securityContext"]["runAsNonRoot"] is True and container["resources"]["limits"]
    assert container["command"] == ["mlflow", "server"] and "--serve-artifacts" in container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("sqlite:////mlflow/")
    [volume] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    [claim] = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_no_boto3_in_code_or_configuration() -> None:
    found = []
    for path in repository_files():
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                found += [f"{path}: import {n}" for n in names if n.split(".")[0] in ("boto3", "botocore")]
        elif path.name == "pyproject.toml":
            project = tomllib.loads(path.read_text())["project"]
            deps = project["dependencies"] + [d for ds in project.get("optional-dependencies", {}).values()
                                              for d in ds]
            found += [f"{path}: {d}" for d in deps if re.match(r"(boto3|botocore)\b", d, re.IGNORECASE)]
        elif path.suffix in (".yaml", ".yml", ".txt", ".cfg", ".toml", ".json", ".sh") or path.name in (
                "Dockerfile", "Makefile", "MLproject"):
            found += [f"{path}: {line.strip()}" for line in path.read_text(errors="replace").splitlines()
                      if re.search(r"\bboto(3|core)\b", line, re.IGNORECASE)]
    assert found == []


def readme_names() -> dict[str, set[str]]:
    """The backticked names of each row of the README's "Names" table, by the row's first cell."""
    text = (PROJECT / "README.md").read_text()
    section = text.split("## Names", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and not set(cells[0]) <= set("-: "):
            rows[cells[0]] = set(re.findall(r"`([^`]+)`", cells[1]))
    return rows


def literal_keys(path: Path, method: str) -> set[str]:
    """The keys of the dict literal passed to every ``<x>.<method>(...)`` call in ``path``."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method:
            [mapping] = [a for a in node.args if isinstance(a, ast.Dict)]
            keys |= {k.value for k in mapping.keys}
    assert keys, (path, method)
    return keys


def test_the_readme_names_are_the_codes() -> None:
    from neurokube.live.settings import Settings as LiveSettings

    nightly, forecast = NightlySettings(), ForecastStepSettings()
    rows = readme_names()
    assert rows["registered models"] == {nightly.model_name, forecast.model_name}
    assert rows["alias"] == {nightly.alias} == {forecast.alias}
    assert rows["experiments"] == {nightly.experiment, forecast.experiment}
    assert rows["run tags (nightly)"] == literal_keys(REPO / "pipelines" / "nightly.py", "tags")
    assert rows["version tags (neurokube-placement)"] == literal_keys(REPO / "pipelines" / "nightly.py",
                                                                      "tag_version")
    assert rows["version tags (neurokube-forecast)"] == literal_keys(REPO / "pipelines" / "forecasts.py",
                                                                     "tag_version")
    assert LiveSettings().model_name == nightly.model_name  # what the binder follows by default


def test_the_registry_health_check_trusts_mlflows_ca_bundle(tmp_path: Path, monkeypatch) -> None:
    """The deployed server is https with a private CA: the Job's up-front check must verify it with
    the bundle MLflow's own client uses (MLFLOW_TRACKING_SERVER_CERT_PATH), not only the system's."""
    from neurokube.errors import TemporaryError
    from neurokube.registry import Registry
    from tests.unit.tls_server import TlsServer

    server = TlsServer(tmp_path / "pki", lambda path: (200, "text/plain", b"OK"))
    try:
        registry = Registry(f"https://localhost:{server.port}")
        monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH", raising=False)
        with pytest.raises(TemporaryError, match="CERTIFICATE_VERIFY_FAILED"):
            registry.check()
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", server.ca_bundle)
        registry.check()
        assert server.paths == ["/health"]
    finally:
        server.close()
