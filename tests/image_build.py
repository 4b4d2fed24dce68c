"""The image of deploy/knative/Dockerfile rebuilt as a file set, without a container runtime, and
what the manifests run in it (tests/unit/test_image_contents.py explains why and how).

Three parts, each usable alone:

* :func:`parse` reads a Dockerfile into stages of instructions (``FROM``, ``WORKDIR``, ``ENV``,
  ``COPY [--from=stage]``, ``RUN``, ``USER``, ``CMD``; line continuations, comments, both ``ENV``
  forms, ``$VAR`` / ``${VAR}`` expansion);
* :func:`assemble` replays the stages into directories, one per stage, each standing for that
  stage's ``/``: ``COPY`` copies from the build context (or another stage), ``RUN python -m venv``
  creates a fresh virtual environment and ``RUN <venv>/bin/pip install <path>`` builds and installs
  the project there with pip itself (``--no-deps --no-build-isolation``, pip, setuptools and wheel
  linked in from the developer venv for that step). The third-party packages are not downloaded:
  afterwards each venv of the final stage sees, through a ``.pth`` file, links to the developer
  venv's files of exactly the distributions its pip commands install (:func:`closure` of the
  built wheel's Requires-Dist), never the project's own editable install. Other ``RUN`` commands
  (apt-get, useradd) touch the base image only and are listed in :attr:`Image.skipped`;
* :func:`workloads` reads the containers of Kubernetes objects (Knative Services, Jobs, CronJobs,
  Deployments) as what they run: a function (the image's ``functions-framework`` CMD with
  ``FUNCTION_TARGET`` / ``FUNCTION_SOURCE``) or a ``python -m <module>`` command, with the
  environment and files (ConfigMap volumes, emptyDirs) the manifests give them; :func:`run`
  starts one in the image; :func:`third_party` / :func:`undeclared` check the distributions it
  imported, :func:`source_imports` every import written in the image's own files, and
  :func:`foreign` that nothing was loaded from outside the image.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: PATH of the python:3.11-slim base image (its own ENV, which the Dockerfile's ``$PATH`` extends).
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
#: ENV of the base image besides PATH that matters to Python.
BASE_ENV = {"PATH": BASE_PATH, "LANG": "C.UTF-8"}
#: The executable the Dockerfile's CMD must be for a container without a command to serve a function.
FUNCTIONS_FRAMEWORK = "functions-framework"
#: The value of a required Secret key (Secrets are created by hand, never in the manifests).
SECRET_PLACEHOLDER = "image-test-placeholder"
KINDS_WITH_PODS = {"Service", "Job", "CronJob", "Deployment", "StatefulSet", "DaemonSet"}


class DockerfileError(ValueError):
    """The Dockerfile cannot be read or replayed: which line, and why."""


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    index: int
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


# -- parsing ----------------------------------------------------------------------------------


def logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, instruction text): comments dropped, ``\\`` continuations joined."""
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue  # Docker drops comment lines, also inside a continued instruction
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        yield start, " ".join(part for part in buf if part)
        buf = []
    if buf:
        raise DockerfileError(f"line {start}: the file ends inside a continued instruction")


def parse(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for number, line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            if not words or (len(words) != 1 and name is None):
                raise DockerfileError(f"line {number}: FROM {args!r} is not 'FROM image [AS name]'")
            stages.append(Stage(len(stages), words[0], name))
        elif keyword == "ARG" and not stages:
            continue
        elif not stages:
            raise DockerfileError(f"line {number}: {keyword} before the first FROM")
        else:
            stages[-1].instructions.append(Instruction(number, keyword, args))
    if not stages:
        raise DockerfileError("no FROM: not a Dockerfile")
    return stages


def expand(value: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def env_assignments(ins: Instruction, env: Mapping[str, str]) -> dict[str, str]:
    """``ENV K=V K2="V 2"`` or the legacy ``ENV K V``; values expanded against ``env``."""
    words = shlex.split(ins.args)
    if words and "=" not in words[0]:
        if len(words) < 2:
            raise DockerfileError(f"line {ins.line}: ENV {ins.args!r} sets no value")
        return {words[0]: expand(ins.args.split(None, 1)[1], env)}
    out: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockerfileError(f"line {ins.line}: ENV {word!r} is not KEY=VALUE")
        out[key] = expand(value, {**env, **out})
    return out


def stage_env(stage: Stage) -> dict[str, str]:
    """The environment a stage's ENV lines leave, over the base image's."""
    env = dict(BASE_ENV)
    for ins in stage.instructions:
        if ins.keyword == "ENV":
            env.update(env_assignments(ins, env))
    return env


def exec_form(ins: Instruction) -> list[str]:
    """CMD / ENTRYPOINT as argv: the JSON form, or the shell form as ``sh -c``."""
    if ins.args.startswith("["):
        try:
            argv = json.loads(ins.args)
        except json.JSONDecodeError as exc:
            raise DockerfileError(f"line {ins.line}: {ins.keyword} {ins.args!r} is not a JSON array: {exc}") from None
        return [str(a) for a in argv]
    return ["/bin/sh", "-c", ins.args]


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    stage: str | None  # --from


def copy_args(ins: Instruction) -> Copy:
    words = shlex.split(ins.args)
    stage = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            stage = flag.partition("=")[2]
        elif not flag.startswith(("--chown=", "--chmod=", "--link")):
            raise DockerfileError(f"line {ins.line}: COPY flag {flag} is not modelled")
    if words and words[0].startswith("["):
        words = json.loads(" ".join(words))
    if len(words) < 2:
        raise DockerfileError(f"line {ins.line}: COPY needs a source and a destination")
    return Copy(tuple(words[:-1]), words[-1], stage)


# -- replaying the stages ---------------------------------------------------------------------


@dataclass
class Venv:
    """A virtual environment the Dockerfile creates, with what its pip commands install."""

    path: str  # in the image
    projects: dict[str, list[str]] = field(default_factory=dict)  # installed from a path: name -> Requires-Dist
    requirements: list[str] = field(default_factory=list)  # named on a pip command line (e.g. pip itself)


@dataclass
class StageState:
    stage: Stage
    root: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=lambda: dict(BASE_ENV))
    venvs: dict[str, Venv] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    user: str | None = None

    def host(self, image_path: str) -> Path:
        path = PurePosixPath(self.workdir, image_path)
        return self.root.joinpath(*path.parts[1:])


@dataclass
class Image:
    """The final stage: its ``/`` on this machine and its runtime settings (image paths)."""

    root: Path
    workdir: str
    env: dict[str, str]
    cmd: list[str]
    entrypoint: list[str]
    user: str | None
    venvs: list[Venv]
    thirdparty: Path  # the developer venv's files of the declared distributions, as the image venvs see them
    roots: list[str]  # the requirements `pip install` in the image starts from (the projects' Requires-Dist)
    declared: set[str]  # what `pip install` in the image installs (canonical distribution names)
    skipped: list[Instruction]

    def own_distributions(self) -> set[str]:
        return {canonicalize_name(name) for v in self.venvs for name in v.projects}


@functools.cache
def installed_files(site_packages: Path) -> tuple[tuple[str, tuple[PurePosixPath, ...] | None], ...]:
    """(canonical name, files in site-packages) of every distribution installed there (scripts in
    ``bin/`` left out: they are not importable)."""
    out = []
    for dist in metadata.distributions(path=[str(site_packages)]):
        files = None if dist.files is None else tuple(
            PurePosixPath(str(f)) for f in dist.files if PurePosixPath(str(f)).parts[:1] not in ((), ("..",)))
        out.append((canonicalize_name(dist.metadata["Name"]), files))
    return tuple(out)


def link_distributions(site_packages: Path, dest: Path, wanted: set[str]) -> Path:
    """``dest`` with links to the files of the distributions ``wanted`` (canonical names) installed
    in ``site_packages``, and to nothing else: a directory shared with other distributions (a
    namespace package, ``__pycache__``) is made and linked into file by file."""
    owners: dict[PurePosixPath, bool] = {}  # file -> belongs to a wanted distribution
    for name, files in installed_files(site_packages):
        if files is None and name in wanted:
            raise DockerfileError(f"{name} lists no files (no RECORD): cannot be linked")
        for rel in files or ():
            owners[rel] = owners.get(rel, False) or name in wanted

    def link(prefix: PurePosixPath, files: dict[PurePosixPath, bool]) -> None:
        (dest / prefix).mkdir(parents=True, exist_ok=True)
        children: dict[str, dict[PurePosixPath, bool]] = {}
        for rel, keep in files.items():
            children.setdefault(rel.parts[len(prefix.parts)], {})[rel] = keep
        for child, below in children.items():
            path = prefix / child
            if all(below.values()) and (site_packages / path).exists():
                (dest / path).symlink_to(site_packages / path)
            elif any(below.values()) and path not in below:
                link(path, below)

    link(PurePosixPath(), owners)
    return dest


def dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = [s.strip() for s in path.read_text().splitlines()]
    patterns = [s.rstrip("/") for s in lines if s and not s.startswith("#")]
    if any(p.startswith("!") for p in patterns):
        raise DockerfileError(".dockerignore exceptions (!pattern) are not modelled")
    return patterns


def copy_into(source: Path, target: Path, into_dir: bool, ignored: list[str], context: Path | None) -> None:
    def ignore(directory: str, names: list[str]) -> list[str]:
        if context is None:
            return []
        rel = Path(directory).relative_to(context)
        return [n for n in names if any(fnmatch.fnmatch(str(rel / n), p) for p in ignored)]

    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=ignore)
    else:
        dest = target / source.name if into_dir else target
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest, follow_symlinks=False)


def do_copy(ins: Instruction, state: StageState, done: list[StageState], context: Path, ignored: list[str]) -> None:
    spec = copy_args(ins)
    src_state = None
    if spec.stage is not None:
        earlier = [s for s in done if spec.stage in (s.stage.name, str(s.stage.index))]
        if not earlier:
            raise DockerfileError(f"line {ins.line}: COPY --from={spec.stage}: no earlier stage of that name")
        src_state = earlier[0]
    src_root, base = (src_state.root, None) if src_state else (context, context)
    matches: list[Path] = []
    for pattern in spec.sources:
        found = [Path(f) for f in sorted(glob.glob(str(src_root / pattern.lstrip("/"))))]
        if base:
            found = [f for f in found if not any(fnmatch.fnmatch(str(f.relative_to(base)), p) for p in ignored)]
        if not found:
            where = f"stage {spec.stage}" if spec.stage else "the build context"
            raise DockerfileError(f"line {ins.line}: COPY source {pattern!r} is not in {where}")
        matches.extend(found)
    into_dir = spec.dest.endswith("/") or len(matches) > 1
    target = state.host(spec.dest)
    for source in matches:
        copy_into(source, target, into_dir or (target.is_dir() and not source.is_dir()), ignored, base)
    if src_state is None or len(spec.sources) != 1:
        return
    # a virtual environment copied along keeps what was installed in it
    src, dest = PurePosixPath("/", spec.sources[0]), PurePosixPath(state.workdir, spec.dest)
    for path, env in src_state.venvs.items():
        if PurePosixPath(path).is_relative_to(src):
            moved = str(dest / PurePosixPath(path).relative_to(src))
            state.venvs[moved] = Venv(moved, dict(env.projects), list(env.requirements))


#: What a pip command in a stage runs with (build isolation's environment, from the developer venv).
BUILD_TOOLS = ("pip", "setuptools", "wheel")
BUILD_PTH = "_image_build_tools.pth"
RUNTIME_PTH = "_image_thirdparty.pth"


def site_packages_of(venv_dir: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv_dir), "platbase": str(venv_dir)}))


def create_venv(state: StageState, image_path: str, tools: Callable[[], Path]) -> None:
    host = state.host(image_path)
    venv.EnvBuilder(symlinks=True, with_pip=False).create(host)
    (site_packages_of(host) / BUILD_PTH).write_text(f"import site; site.addsitedir({str(tools())!r})\n")
    path = str(PurePosixPath(state.workdir, image_path))
    state.venvs[path] = Venv(path)


PIP_FLAGS_IGNORED = {"--no-cache-dir", "--upgrade", "-U", "--quiet", "-q", "--no-compile", "--no-deps",
                     "--disable-pip-version-check", "--no-warn-script-location"}


def pip_install(ins: Instruction, state: StageState, venv_path: str, args: list[str], scratch: Path) -> None:
    env = state.venvs[venv_path]
    paths: list[str] = []
    while args:
        word = args.pop(0)
        if word in PIP_FLAGS_IGNORED or word.startswith("--root-user-action"):
            continue
        if word in ("-r", "--requirement"):
            lines = state.host(args.pop(0)).read_text().splitlines()
            env.requirements.extend(s.split("#")[0].strip() for s in lines if s.split("#")[0].strip())
        elif word.startswith("-"):
            raise DockerfileError(f"line {ins.line}: pip option {word} is not modelled")
        elif word.startswith((".", "/")) or state.host(word).exists():
            paths.append(word)
        else:
            env.requirements.append(word)
    python = state.host(venv_path) / "bin" / "python"
    for path in paths:
        report = scratch / f"pip-report-{ins.line}.json"
        cmd = [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
               "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--report", str(report),
               str(state.host(path))]
        done = subprocess.run(cmd, cwd=state.host("."), env=clean_env({"PATH": f"{python.parent}:/usr/bin:/bin",
                                                                       "HOME": str(scratch)}),
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            hint = ("\n(the developer venv's setuptools needs `wheel`: pip install -e '.[test]')"
                    if "invalid command 'bdist_wheel'" in done.stderr else "")
            raise DockerfileError(f"line {ins.line}: pip install {path} fails in the rebuilt stage:\n{done.stderr}{hint}")
        for item in json.loads(report.read_text())["install"]:
            meta = item["metadata"]
            env.projects[meta["name"]] = list(meta.get("requires_dist", []))


def do_run(ins: Instruction, state: StageState, tools: Callable[[], Path], scratch: Path) -> bool:
    """Replays the commands that build the image's Python environment; False if none was."""
    simulated = False
    for command in re.split(r"&&|;", ins.args):
        words = shlex.split(command)
        if not words:
            continue
        if len(words) == 4 and Path(words[0]).name.startswith("python") and words[1:3] == ["-m", "venv"]:
            create_venv(state, words[3], tools)
            simulated = True
            continue
        pip_words = (words[:1] if Path(words[0]).name.startswith("pip") else
                     words[:3] if words[1:3] == ["-m", "pip"] else None)
        if pip_words is None:
            continue
        if words[len(pip_words):len(pip_words) + 1] != ["install"]:
            continue
        exe = str(PurePosixPath(state.workdir, words[0]))
        owner = [p for p in state.venvs if PurePosixPath(exe).is_relative_to(PurePosixPath(p, "bin"))]
        if not owner:
            raise DockerfileError(f"line {ins.line}: {words[0]} is not the pip of a virtual environment this "
                                  "Dockerfile creates (installs into the base image's Python are not modelled)")
        pip_install(ins, state, owner[0], words[len(pip_words) + 1:], scratch)
        simulated = True
    return simulated


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """An environment with nothing of this process's Python set-up (no PYTHONPATH, no VIRTUAL_ENV)."""
    return {"LANG": "C.UTF-8", **extra}


def assemble(dockerfile: Path, context: Path, workdir: Path, site_packages: Path) -> Image:
    """Replays ``dockerfile`` in ``workdir`` with the build context ``context``. The pip commands
    run with pip, setuptools and wheel of ``site_packages`` (the developer venv's); then every
    virtual environment of the final stage sees, instead, the files of the distributions that its
    pip commands install (the closure of their requirements) and nothing else of ``site_packages``:
    an undeclared import fails there as it would in the image."""
    stages = parse(dockerfile.read_text())
    tools = functools.cache(lambda: link_distributions(site_packages, workdir / "build-tools",
                                                       closure(BUILD_TOOLS, site_packages)))
    ignored = dockerignore(context)
    done: list[StageState] = []
    skipped: list[Instruction] = []
    for stage in stages:
        if any(stage.base in (s.stage.name, str(s.stage.index)) for s in done):
            raise DockerfileError(f"FROM {stage.base}: a stage built on an earlier stage is not modelled")
        state = StageState(stage, workdir / f"stage{stage.index}")
        state.root.mkdir(parents=True)
        for ins in stage.instructions:
            if ins.keyword == "WORKDIR":
                state.workdir = str(PurePosixPath(state.workdir, expand(ins.args, state.env)))
                state.host(".").mkdir(parents=True, exist_ok=True)
            elif ins.keyword == "ENV":
                state.env.update(env_assignments(ins, state.env))
            elif ins.keyword in ("COPY", "ADD"):
                do_copy(ins, state, done, context, ignored)
            elif ins.keyword == "RUN":
                if not do_run(ins, state, tools, workdir):
                    skipped.append(ins)
            elif ins.keyword == "CMD":
                state.cmd = exec_form(ins)
            elif ins.keyword == "ENTRYPOINT":
                state.entrypoint = exec_form(ins)
            elif ins.keyword == "USER":
                state.user = ins.args
            elif ins.keyword not in ("EXPOSE", "LABEL", "ARG", "HEALTHCHECK", "STOPSIGNAL", "SHELL", "VOLUME"):
                raise DockerfileError(f"line {ins.line}: {ins.keyword} is not modelled")
        done.append(state)
    last = done[-1]
    venvs = list(last.venvs.values())
    roots = [r for v in venvs for reqs in v.projects.values() for r in reqs] + [r for v in venvs for r in v.requirements]
    declared = closure(roots, site_packages)
    thirdparty = link_distributions(site_packages, workdir / "thirdparty", declared)
    for v in venvs:
        site = site_packages_of(last.host(v.path))
        (site / BUILD_PTH).unlink(missing_ok=True)
        (site / RUNTIME_PTH).write_text(f"import site; site.addsitedir({str(thirdparty)!r})\n")
    return Image(last.root, last.workdir, last.env, last.cmd, last.entrypoint, last.user, venvs, thirdparty,
                 roots, declared, skipped)


# -- what the manifests run -------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One container: ``command`` empty means the image's ENTRYPOINT and CMD."""

    name: str
    image: str
    command: tuple[str, ...]
    env: dict[str, str]
    mounts: dict[str, dict[str, str]]  # mountPath -> files in it (empty: an empty directory)


def pod_specs(doc: dict) -> Iterable[dict]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template", {}).get("spec")
    if template is not None:
        yield template


def workloads(docs: list[dict]) -> list[Workload]:
    """Every container of every pod template in ``docs``; ConfigMaps in ``docs`` fill envFrom,
    configMapKeyRef and configMap volumes (an optional one that is absent is left out, as the
    kubelet does). Secrets are never in the manifests: a required secretKeyRef (the pod would not
    start without it) gets :data:`SECRET_PLACEHOLDER`, an optional one is left unset."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d.get("kind") == "ConfigMap"}
    out: list[Workload] = []
    for doc in docs:
        if doc.get("kind") not in KINDS_WITH_PODS:
            continue
        for spec in pod_specs(doc):
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec.get("containers", []):
                env: dict[str, str] = {}
                for source in c.get("envFrom", []):
                    env.update(maps.get(source.get("configMapRef", {}).get("name"), {}))
                for e in c.get("env", []):
                    if "value" in e:
                        env[e["name"]] = str(e["value"])
                    elif ref := e.get("valueFrom", {}).get("configMapKeyRef"):
                        if ref["key"] in maps.get(ref["name"], {}):
                            env[e["name"]] = maps[ref["name"]][ref["key"]]
                    elif (ref := e.get("valueFrom", {}).get("secretKeyRef")) and not ref.get("optional"):
                        env[e["name"]] = SECRET_PLACEHOLDER  # the pod starts only if the Secret has the key
                mounts: dict[str, dict[str, str]] = {}
                for m in c.get("volumeMounts", []):
                    if "subPath" in m:
                        raise ValueError(f"{doc['metadata']['name']}: subPath mounts are not modelled")
                    volume = volumes[m["name"]]
                    data = maps.get(volume["configMap"]["name"], {}) if "configMap" in volume else {}
                    items = volume.get("configMap", {}).get("items")
                    mounts[m["mountPath"]] = ({i["path"]: data[i["key"]] for i in items if i["key"] in data}
                                              if items else dict(data))
                name = f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
                out.append(Workload(name, c["image"], tuple(c.get("command", [])) + tuple(c.get("args", [])),
                                    env, mounts))
    return out


@dataclass
class Mapper:
    """Image paths to this machine's: a mount's files, else the image's ``/`` (mounts win)."""

    root: Path
    mounts: dict[str, Path]

    def path(self, image_path: str) -> Path:
        p = PurePosixPath(image_path)
        for mount in sorted(self.mounts, key=len, reverse=True):
            if p.is_relative_to(mount):
                return self.mounts[mount].joinpath(*p.relative_to(mount).parts)
        return self.root.joinpath(*p.parts[1:])

    def in_image(self, image_path: str) -> bool:
        p = PurePosixPath(image_path)
        return any(p.is_relative_to(m) for m in self.mounts) or (len(p.parts) > 1 and (self.root / p.parts[1]).exists())

    def value(self, value: str) -> str:
        """An environment value: absolute paths (``:``-separated lists too) that lie in the image."""
        parts = value.split(":")
        if not value.startswith("/") or not all(s.startswith("/") for s in parts):
            return value
        return ":".join(str(self.path(s)) if self.in_image(s) else s for s in parts)


@dataclass(frozen=True)
class Run:
    argv: list[str]  # as the container would run it (image paths)
    ok: bool
    error: str
    modules: dict[str, str | None]  # imported module -> file on this machine
    distributions: dict[str, list[str]]  # top-level name -> distributions (packages_distributions)
    output: str
    mounts: tuple[Path, ...] = ()  # the container's volumes on this machine


PROBE = textwrap.dedent("""
    import json, os, runpy, sys, traceback
    out, kind, *rest = sys.argv[1:]
    status = {"ok": False, "error": ""}
    try:
        if kind == "function":
            import functions_framework
            functions_framework.create_app(os.environ.get("FUNCTION_TARGET"), os.environ.get("FUNCTION_SOURCE"),
                                           os.environ.get("FUNCTION_SIGNATURE_TYPE"))
            status["ok"] = True
        else:
            sys.argv = list(rest)
            try:
                runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
                status["ok"] = True
            except SystemExit as exc:
                status = {"ok": exc.code in (0, None), "error": "" if exc.code in (0, None) else f"exit status {exc.code}"}
    except BaseException:
        status = {"ok": False, "error": traceback.format_exc()}
    finally:
        import importlib.metadata
        modules = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}
        with open(out, "w") as f:
            json.dump({**status, "modules": modules, "distributions": importlib.metadata.packages_distributions()}, f)
""")


def resolve(executable: str, path_value: str, mapper: Mapper) -> Path | None:
    """``executable`` as the container's PATH finds it, if in a directory the image fills (the base
    image's own directories hold its Python without the project's packages)."""
    if "/" in executable:
        return mapper.path(executable) if mapper.in_image(executable) else None
    for directory in path_value.split(":"):
        if not mapper.in_image(directory):
            continue
        candidate = mapper.path(directory) / executable
        if candidate.exists():
            return candidate
    return None


def run(image: Image, workload: Workload, scratch: Path, timeout_s: float = 120.0) -> Run:
    """Starts ``workload`` in the image as far as importing it: a function's target through
    functions-framework's own loader (what its CLI does before serving), a ``python -m module``
    command as ``-m`` runs it, with ``--help`` for its arguments. Its working directory is the
    image's WORKDIR and its environment the image's ENV under the container's."""
    scratch.mkdir(parents=True)
    mounts: dict[str, Path] = {}
    for i, (mount_path, files) in enumerate(sorted(workload.mounts.items())):
        mounts[mount_path] = scratch / f"mount{i}"
        mounts[mount_path].mkdir()
        for name, text in files.items():
            (mounts[mount_path] / name).write_text(text)
    if "/tmp" not in mounts:
        mounts["/tmp"] = scratch / "tmp"
        mounts["/tmp"].mkdir()
    mapper = Mapper(image.root, mounts)
    # the kubelet gives every container the API server's Service address
    env = {**image.env, "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", **workload.env}
    path_dirs = env.get("PATH", "").split(":")
    argv = list(workload.command) or image.entrypoint + image.cmd
    if argv == [FUNCTIONS_FRAMEWORK]:
        # its console script runs with the Python of the first virtual environment on PATH
        # (whether pip put it there is checked against the dependency closure)
        kind, rest = "function", []
        bins = [d for d in path_dirs if any(d == str(PurePosixPath(v.path, "bin")) for v in image.venvs)]
        python = mapper.path(bins[0]) / "python" if bins else None
    elif len(argv) >= 3 and argv[1] == "-m":
        kind, rest = "module", [argv[2], "--help"]
        python = resolve(argv[0], env.get("PATH", ""), mapper)
    else:
        return Run(argv, False, f"{argv} is neither {FUNCTIONS_FRAMEWORK} nor 'python -m module': not modelled",
                   {}, {}, "")
    if python is None:
        return Run(argv, False, f"{argv[0]!r} is not found on the image's PATH {env.get('PATH')!r} in a virtual "
                                "environment or directory the Dockerfile fills", {}, {}, "")
    host_env = clean_env({k: mapper.value(v) for k, v in env.items()})
    host_env.setdefault("HOME", str(mapper.path("/tmp")))
    out = scratch / "probe.json"
    done = subprocess.run([str(python), "-c", PROBE, str(out), kind, *rest], cwd=mapper.path(image.workdir),
                          env=host_env, capture_output=True, text=True, timeout=timeout_s)
    if not out.exists():
        return Run(argv, False, f"the probe did not finish (status {done.returncode}):\n{done.stderr}", {}, {},
                   done.stdout)
    result = json.loads(out.read_text())
    return Run(argv, result["ok"], result["error"], result["modules"], result["distributions"],
               done.stdout + done.stderr, tuple(mounts.values()))


# -- third-party distributions ----------------------------------------------------------------


def closure(roots: Iterable[str], site_packages: Path) -> set[str]:
    """Canonical names of the distributions ``pip install`` of ``roots`` installs: each requirement
    whose marker holds, and theirs, as installed in ``site_packages`` (the extras asked for followed)."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site_packages)])}
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = [(r, frozenset()) for r in roots]
    while todo:
        text, parent_extras = todo.pop()
        req = Requirement(text)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (parent_extras or {""})):
            continue
        name, extras = canonicalize_name(req.name), frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        if name in installed:
            todo.extend((r, extras) for r in installed[name].requires or [])
    return names


def third_party(run: Run, thirdparty: Path) -> dict[str, set[str]]:
    """Top-level names of the modules ``run`` imported from the third-party files -> the
    distributions that provide them (``packages_distributions`` in the image)."""
    out: dict[str, set[str]] = {}
    for file in run.modules.values():
        if file and Path(file).is_relative_to(thirdparty):
            top = Path(file).relative_to(thirdparty).parts[0].split(".")[0]
            out[top] = {canonicalize_name(d) for d in run.distributions.get(top, [])}
    return out


def source_imports(image: Image) -> dict[str, set[str]]:
    """Absolute imports written anywhere in the image's own Python files (also those inside
    functions, which starting a workload does not run) that are neither the standard library nor
    the image's own modules: top-level name -> files (image paths)."""
    files = sorted(image.root.rglob("*.py"))
    sites = [site_packages_of(image.root / v.path.lstrip("/")) for v in image.venvs]
    # on sys.path: the venvs' site-packages, the WORKDIR, and a function's own directory (functions-framework adds it)
    dirs = {*sites, image.root / image.workdir.lstrip("/")} | {
        p.parent for p in files if not any(p.is_relative_to(s) for s in sites)}
    own = {p.name.split(".")[0] for d in dirs for p in d.iterdir()}
    out: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for top in {n.partition(".")[0] for n in names} - own - set(sys.stdlib_module_names):
                out.setdefault(top, set()).add("/" + str(path.relative_to(image.root)))
    return out


def providers(site_packages: Path) -> dict[str, set[str]]:
    """Top-level module name -> the distributions installed in ``site_packages`` that provide it."""
    out: dict[str, set[str]] = {}
    for name, files in installed_files(site_packages):
        for rel in files or ():
            if not rel.parts[0].endswith((".dist-info", ".egg-info", ".pth")) and rel.parts[0] != "__pycache__":
                out.setdefault(rel.parts[0].split(".")[0], set()).add(name)
    return out


def undeclared(imported: Mapping[str, set[str]], declared: set[str]) -> dict[str, set[str]]:
    """The imported top-level modules none of whose distributions is declared."""
    return {top: dists for top, dists in sorted(imported.items()) if not dists & declared}


def foreign(run: Run, image: Image) -> dict[str, str]:
    """Modules loaded from neither the image's ``/``, the container's mounts, the third-party
    packages nor the standard library (the repository, say)."""
    stdlib = Path(sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix}))
    allowed = [image.root, image.thirdparty, *run.mounts]

    def inside(f: Path) -> bool:
        return any(f.is_relative_to(p) for p in allowed) or (
            f.is_relative_to(stdlib) and not f.is_relative_to(stdlib / "site-packages"))

    return {n: f for n, f in run.modules.items() if f and not inside(Path(f)) and not inside(Path(os.path.realpath(f)))}
