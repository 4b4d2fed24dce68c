"""The image holds what runs in it (issue 12): deploy/knative/Dockerfile's image starts every
function the manifests deploy and the nightly Job's ``python -m pipelines.nightly``.

There is no container runtime on the build machine, so the image's *file set* is rebuilt from the
Dockerfile's own instructions (tests/image_build.py) and what the manifests run is started in it:

* the build context is what ``COPY`` names, nothing more: every stage is a directory standing for
  its ``/``; ``WORKDIR``, ``COPY src dst`` and ``COPY --from=<stage>`` are replayed, ``ENV`` is
  read with its ``$PATH`` expansion. ``RUN python -m venv /venv`` creates a fresh virtual
  environment (``python -m venv``, no pip) and ``RUN /venv/bin/pip install .`` builds and installs
  the project into it with pip itself, from the copied files (``pip install --no-deps
  --no-build-isolation --no-index``): the wheel holds exactly what pyproject.toml's package list
  and the ``COPY`` lines give it. Other ``RUN`` commands (apt-get, useradd) concern the base image;
  they are listed, not replayed;
* the honest shortcut: the third-party packages are not downloaded (minutes on 2 cores). The
  fresh venv sees, through a ``.pth`` file, a directory of links to the developer venv's files of
  exactly the distributions ``pip install .`` installs: the closure of the built wheel's
  Requires-Dist (as pip reports it) and their requirements, markers evaluated, via
  importlib.metadata. Never the project's own installed distribution (the editable
  ``__editable__`` finder and ``.pth`` that point at the repository), nor what only the tests or
  the developer need: an undeclared import fails there as in the image, and an optional one
  (``try: import brotli``) takes its fallback as there. On top, every distribution the
  workloads actually imported (``sys.modules`` -> ``importlib.metadata.packages_distributions``
  in the image) must be in that closure, and every import *written* in the image's own files
  (also those inside functions, which starting does not run, such as the nightly training's)
  must name a distribution pyproject.toml requires itself;
* the workloads are read from the manifests kustomization.yaml lists (every container of every
  Knative Service, Job, CronJob or Deployment, with its env, envFrom ConfigMaps and ConfigMap
  volumes; KUBERNETES_SERVICE_HOST as the kubelet sets it), plus the Job the trainer Service
  creates (functions/trainer/main.py builds it; it is not a file). What the docs have an operator
  create by hand is there as deployed: the ConfigMap neurokube-ca (certifi's CA bundle), the
  required keys of Secrets (a placeholder value; the optional ones unset). A container without a command
  runs the image's CMD, functions-framework: its target is loaded by functions-framework's own
  ``create_app`` (what the CLI does before serving) in a fresh process. A ``python -m module``
  command runs as ``-m`` runs it (runpy) with ``--help``. Each starts from the image's WORKDIR with
  the image's ENV under the container's, ``python`` found on the image's PATH, and the
  repository on no path: a module loaded from outside the image, its mounts, the third-party
  packages or the standard library fails the test.

It can fail: a Dockerfile without ``COPY pipelines ./pipelines`` (rebuilt from the text) cannot
run the nightly Job, one without ``/venv/bin`` on PATH finds no Python with the packages, and a
dependency left out of the declared ones is reported (a pyproject.toml without PyJWT, tried by
hand, fails every function that authenticates its callers with ``No module named 'jwt'``).

About 18 s of CPU (3 s for the wheel build, 0.3-3 s per workload, one process each, two at a
time): 20-30 s alone on 2 idle cores, 55-90 s with the machine loaded (load average 10).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import sys
import sysconfig
import tomllib
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from unittest import mock

import certifi
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import image_build as ib

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KNATIVE = ROOT / "deploy" / "knative"
DOCKERFILE = KNATIVE / "Dockerfile"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
SITE_PACKAGES = Path(sysconfig.get_path("purelib"))


def manifests() -> list[dict]:
    """The objects `kubectl apply -k deploy/knative` applies."""
    kustomization = yaml.safe_load((KNATIVE / "kustomization.yaml").read_text())
    return [d for name in kustomization["resources"] for d in yaml.safe_load_all((KNATIVE / name).read_text()) if d]


def launched_jobs(docs: list[dict]) -> list[dict]:
    """The Job the trainer Service creates each night, from its own code and deployed env."""
    source = ROOT / "functions" / "trainer" / "main.py"
    spec = importlib.util.spec_from_file_location("trainer_main_image", source)
    trainer = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, {"NEUROKUBE_INSECURE": "1"}):  # its auth is read at import
        spec.loader.exec_module(trainer)
    jobs = []
    for w in ib.workloads(docs):
        if w.env.get("FUNCTION_SOURCE", "").endswith("/functions/trainer/main.py"):
            settings = trainer.settings_from_env({"KUBERNETES_SERVICE_HOST": "10.96.0.1", **w.env})
            jobs.append(trainer.job_manifest(settings, "2024-03-08", "ev-1"))
    return jobs


#: What docs/FUNCTIONS.md ("Deploying to a cluster with Knative", step 4) has an operator create by
#: hand: the ConfigMap neurokube-ca, here with a real CA bundle (certifi's). The Secrets' required
#: keys get a placeholder (image_build.SECRET_PLACEHOLDER), their optional ones stay unset.
HAND_MADE = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "neurokube-ca", "namespace": "neurokube"},
              "data": {"ca.crt": Path(certifi.where()).read_text()}}]
DOCS = manifests()
WORKLOADS = {w.name: w for w in ib.workloads(DOCS + HAND_MADE + launched_jobs(DOCS))}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> ib.Image:
    return ib.assemble(DOCKERFILE, ROOT, tmp_path_factory.mktemp("image").resolve(), SITE_PACKAGES)


@pytest.fixture(scope="module")
def runs(image, tmp_path_factory) -> dict[str, ib.Run]:
    scratch = tmp_path_factory.mktemp("runs").resolve()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(ib.run, image, w, scratch / str(i)) for i, (name, w) in
                   enumerate(sorted(WORKLOADS.items()))}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def declared(image) -> set[str]:
    return ib.closure(image.roots, SITE_PACKAGES)


def test_the_manifests_run_one_image_with_functions_and_the_nightly_job():
    def repository(ref: str) -> str:
        name = ref.split("@")[0]
        return name.rpartition(":")[0] if ":" in name.rpartition("/")[2] else name

    repositories = {repository(w.image) for w in WORKLOADS.values()}
    assert len(repositories) == 1, repositories
    assert any(not w.command for w in WORKLOADS.values())
    assert any(w.command[1:3] == ("-m", "pipelines.nightly") for w in WORKLOADS.values())


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_workload_starts_in_the_image(runs, name):
    run = runs[name]
    assert run.ok, f"{name} ({' '.join(run.argv)}) does not start in the image:\n{run.error}\n{run.output[-2000:]}"
    assert run.modules, name


def test_the_nightly_job_answers_help(runs):
    [job] = [r for n, r in runs.items() if WORKLOADS[n].command[1:3] == ("-m", "pipelines.nightly")]
    assert "usage: python -m pipelines.nightly" in job.output


def test_nothing_is_loaded_from_the_repository(image, runs):
    for name, run in runs.items():
        outside = ib.foreign(run, image)
        assert not outside, (name, outside)
        own = run.modules.get(PROJECT)
        assert own and Path(own).is_relative_to(image.root), (name, own)


def test_every_third_party_import_is_declared(image, runs, declared):
    assert image.own_distributions() == {canonicalize_name(PROJECT)}
    for name, run in runs.items():
        missing = ib.undeclared(ib.third_party(run, image.thirdparty), declared)
        assert not missing, f"{name} imports {missing}, which `pip install .` does not install: declare them"


def test_every_import_written_in_the_image_is_a_declared_requirement(image):
    """Imports that run later (inside a function, as the nightly training's do) are checked in the
    source: each names the standard library, the image's own files, or a distribution that
    pyproject.toml requires itself (not one that only arrives as another's dependency)."""
    imports = ib.source_imports(image)
    assert "pipelines" not in imports and "neurokube" not in imports and "numpy" in imports
    direct = {canonicalize_name(Requirement(r).name) for r in image.roots}
    providers = ib.providers(SITE_PACKAGES)
    missing = {top: files for top, files in imports.items() if not providers.get(top, set()) & direct}
    assert not missing, f"imported in the image but not required by pyproject.toml: {missing}"


def test_the_cmd_comes_with_the_declared_dependencies(image, declared):
    assert image.cmd == [ib.FUNCTIONS_FRAMEWORK] and not image.entrypoint
    scripts = {ep.name: canonicalize_name(d.metadata["Name"]) for d in metadata.distributions(
        path=[str(image.thirdparty)]) for ep in d.entry_points if ep.group == "console_scripts"}
    assert scripts.get(ib.FUNCTIONS_FRAMEWORK) in declared
    assert any(f"{v.path}/bin" in image.env["PATH"].split(":") for v in image.venvs), image.env["PATH"]
    assert image.user == "10001:10001"


def test_the_image_python_is_the_one_the_rebuild_runs():
    """The rebuild runs the developer venv's interpreter: the same Python minor as the image's."""
    base = ib.parse(DOCKERFILE.read_text())[-1].base
    match = re.fullmatch(r"python:(\d+)\.(\d+)[-.\w]*", base)
    assert match and tuple(map(int, match.groups())) == sys.version_info[:2], base


def test_only_base_image_commands_are_not_replayed(image):
    for ins in image.skipped:
        assert "pip" not in ins.args and "python" not in ins.args, ins


# -- the check can fail ---------------------------------------------------------------------------


def test_an_undeclared_dependency_is_reported(image, runs):
    """Without kubernetes among the declared requirements (and nothing else pulling it in), the
    binder's import of it is reported."""
    roots = [r for r in image.roots if canonicalize_name(Requirement(r).name) != "kubernetes"]
    binder = next(r for n, r in runs.items() if WORKLOADS[n].env.get("FUNCTION_TARGET") == "binder")
    assert "kubernetes" in ib.undeclared(ib.third_party(binder, image.thirdparty), ib.closure(roots, SITE_PACKAGES))


def test_a_dockerfile_without_the_pipelines_cannot_run_the_nightly_job(tmp_path):
    """Rebuilt from the text without `COPY pipelines ./pipelines`: the wheel has no pipelines."""
    text = DOCKERFILE.read_text()
    assert "COPY pipelines ./pipelines\n" in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("COPY pipelines ./pipelines\n", ""))
    image = ib.assemble(broken, ROOT, tmp_path / "image", SITE_PACKAGES)
    [job] = [w for w in WORKLOADS.values() if w.command[1:3] == ("-m", "pipelines.nightly")]
    run = ib.run(image, job, tmp_path / "run")
    assert not run.ok and "No module named 'pipelines'" in run.error, run.error
    # had the repository been on the path, pipelines would import, and the check of origins says so
    # (a light module of the package, not the whole Job again)
    (ib.site_packages_of(image.root / "venv") / "repository.pth").write_text(f"{ROOT}\n")
    leaked = ib.run(image, dataclasses.replace(job, command=("python", "-m", "pipelines.keys")), tmp_path / "leaked")
    assert leaked.ok and Path(ib.foreign(leaked, image)["pipelines"]).is_relative_to(ROOT), leaked.error


def test_a_dockerfile_without_the_venv_on_path_cannot_start_a_function(image, tmp_path):
    """The same file set with the ENV of a Dockerfile that leaves /venv/bin off PATH: neither
    `python -m` nor functions-framework would find the image's Python."""
    text = DOCKERFILE.read_text()
    broken = text.replace("ENV PATH=/venv/bin:$PATH \\\n    ", "ENV ")
    assert broken != text
    env = ib.stage_env(ib.parse(broken)[-1])
    assert env["PATH"] == ib.BASE_PATH and env["PYTHONUNBUFFERED"] == "1"
    without = dataclasses.replace(image, env=env)
    [job] = [w for w in WORKLOADS.values() if w.command[1:3] == ("-m", "pipelines.nightly")]
    function = next(w for w in WORKLOADS.values() if not w.command)
    for workload in (job, function):
        run = ib.run(without, workload, tmp_path / workload.name.replace("/", "-"))
        assert not run.ok and "not found on the image's PATH" in run.error, run.error


# -- the Dockerfile reader --------------------------------------------------------------------------


def test_parse_reads_stages_continuations_and_comments():
    stages = ib.parse("ARG V=1\nFROM python:3.11 AS build\n# a comment\nRUN a \\\n  # inside\n  && b\n"
                      "FROM python:3.11\nCOPY --from=build /venv /venv\n")
    assert [(s.name, s.base) for s in stages] == [("build", "python:3.11"), (None, "python:3.11")]
    assert stages[0].instructions == [ib.Instruction(4, "RUN", "a && b")]
    assert ib.copy_args(stages[1].instructions[0]) == ib.Copy(("/venv",), "/venv", "build")


def test_env_both_forms_and_expansion():
    env = {"PATH": "/usr/bin"}
    assert ib.env_assignments(ib.Instruction(1, "ENV", 'PATH=/venv/bin:$PATH A="x y" B=${A}'), env) == {
        "PATH": "/venv/bin:/usr/bin", "A": "x y", "B": "x y"}
    assert ib.env_assignments(ib.Instruction(1, "ENV", "K some value"), env) == {"K": "some value"}
    assert ib.exec_form(ib.Instruction(1, "CMD", '["functions-framework"]')) == ["functions-framework"]
    assert ib.stage_env(ib.parse("FROM x\nENV A=1\nENV PATH=/v/bin:$PATH B=$A\n")[0]) == {
        **ib.BASE_ENV, "A": "1", "PATH": "/v/bin:" + ib.BASE_PATH, "B": "1"}


@pytest.mark.parametrize("text, why", [
    ("COPY a b\n", "before the first FROM"),
    ("FROM x\nRUN a \\\n", "ends inside"),
    ("FROM x\nCOPY --from=nowhere /a /a\n", "no earlier stage"),
    ("FROM x\nCOPY not-in-the-context /a\n", "not in the build context"),
    ("FROM x\nRUN pip install .\n", "not the pip of a virtual environment"),
    ("FROM x\nONBUILD RUN a\n", "not modelled"),
])
def test_bad_dockerfiles_are_refused_with_the_line(tmp_path, text, why):
    (tmp_path / "Dockerfile").write_text(text)
    with pytest.raises(ib.DockerfileError, match=why):
        ib.assemble(tmp_path / "Dockerfile", ROOT, tmp_path / "image", SITE_PACKAGES)


def test_the_image_sees_the_declared_distributions_only(image, declared):
    """The developer venv's editable install (its finder and .pth point at the repository) and
    what only the tests need (pytest, locust) are not visible in the image's venv."""
    assert image.declared == declared and canonicalize_name(PROJECT) not in declared
    visible = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions(path=[str(image.thirdparty)])}
    assert visible == declared & {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions(
        path=[str(SITE_PACKAGES)])}
    assert not any(p.name.startswith("__editable__") for p in image.thirdparty.iterdir())
    assert "pytest" not in visible and "locust" not in visible
