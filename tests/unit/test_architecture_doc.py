"""docs/ARCHITECTURE.md names only what exists, so that it cannot go stale silently.

Covered: every ``neurokube/...`` path and every relative ``x/y.py`` path in the text exists (under
the repository root or under ``neurokube/``; ``*`` globs must match something); every dotted
``neurokube.x.y`` name imports (a module, or an attribute of one); the one Mermaid picture keeps
to about 30 nodes, and every code name in its labels exists: ``live.ledger`` as a module of
``neurokube``, ``Ledger.place`` as a class with that attribute, ``run_cycle`` or ``ClusterView``
as a name defined somewhere in neurokube/, functions/ or pipelines/. The one path that is named on
purpose without existing is the worked example's module ("Adding a scoring plugin"), whose code
lives in tests/unit/test_policy_plugin_example.py. The checker itself is shown to fail on made-up
names.
"""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
SOURCES = ("neurokube", "functions", "pipelines")
MAX_PICTURE_NODES = 30
# Names in the picture that are not this project's code: Kubernetes and Knative objects, services.
EXTERNAL = frozenset({"ApiServerSource", "CloudEvent", "MinIO"})
# The module a reader creates in the worked example, and where its code is tested instead.
EXAMPLE_MODULE = "neurokube/policies/least_pods.py"
EXAMPLE_TEST = ROOT / "tests" / "unit" / "test_policy_plugin_example.py"

NEUROKUBE_PATH = re.compile(r"\bneurokube/[\w*./-]*")
RELATIVE_PY = re.compile(r"(?<![\w./-])(?:[\w*-]+/)+[\w*-]+\.py\b")
DOTTED_NAME = re.compile(r"\bneurokube(?:\.[A-Za-z_]\w*)+")
MERMAID = re.compile(r"```mermaid\n(.*?)```", re.S)
PICTURE_NODE = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*[\[\(]", re.M)
QUOTED = re.compile(r'"([^"]*)"')
HTML_TAG = re.compile(r"<[^>]*>")
PATH_TOKEN = re.compile(r"\b[a-z_][\w.-]*/[\w./-]*")
MODULE_TOKEN = re.compile(r"\b[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+\b")
ATTRIBUTE_TOKEN = re.compile(r"\b([A-Z]\w*)\.([a-z_]\w*)\b")
CODE_TOKEN = re.compile(r"\b(?:[A-Z][a-z0-9]+[A-Z]\w*|[A-Za-z]\w*_\w*)\b")


def _exists(path: str) -> bool:
    path = path.rstrip("./")
    return any(any(base.glob(path)) if "*" in path else (base / path).exists() for base in (ROOT, ROOT / "neurokube"))


def _imports(dotted: str) -> bool:
    """``neurokube.a.b.C.d``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@cache
def _defined() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """Every name defined in the project's source (functions, classes, assignments, at any level)
    and, per class name, the names its body defines."""
    names: set[str] = set()
    members: dict[str, set[str]] = {}
    for package in SOURCES:
        for file in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
                if isinstance(node, ast.ClassDef):
                    body = members.setdefault(node.name, set())
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                            body.add(item.name)
                        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                            body.add(item.target.id)
                        elif isinstance(item, ast.Assign):
                            body.update(t.id for t in item.targets if isinstance(t, ast.Name))
    return frozenset(names), {k: frozenset(v) for k, v in members.items()}


def picture_problems(picture: str) -> list[str]:
    """What in one Mermaid picture names code that does not exist, or makes it too big."""
    problems = []
    nodes = set(PICTURE_NODE.findall(picture))
    if len(nodes) > MAX_PICTURE_NODES:
        problems.append(f"the picture has {len(nodes)} nodes (at most {MAX_PICTURE_NODES})")
    names, members = _defined()
    for label in QUOTED.findall(picture):
        label = HTML_TAG.sub(" ", label)
        for path in PATH_TOKEN.findall(label):
            if not _exists(path):
                problems.append(f"picture: no such path {path}")
        label = PATH_TOKEN.sub(" ", label)
        for module in MODULE_TOKEN.findall(label):
            if not _imports(f"neurokube.{module}"):
                problems.append(f"picture: no module or name neurokube.{module}")
        for cls, attr in ATTRIBUTE_TOKEN.findall(label):
            if attr not in members.get(cls, ()):
                problems.append(f"picture: no class {cls} with {attr}")
        label = ATTRIBUTE_TOKEN.sub(" ", MODULE_TOKEN.sub(" ", label))
        for name in CODE_TOKEN.findall(label):
            if name not in names and name not in EXTERNAL:
                problems.append(f"picture: {name} is defined nowhere in {', '.join(SOURCES)}")
    return problems


def stale_references(text: str) -> list[str]:
    """Every path and dotted name in ``text`` that does not exist, and the picture's problems."""
    paths = dict.fromkeys([*NEUROKUBE_PATH.findall(text), *RELATIVE_PY.findall(text)])  # once each, in order
    problems = [f"no such path {p}" for p in paths if p != EXAMPLE_MODULE and not _exists(p)]
    problems += [f"no module or name {n}" for n in DOTTED_NAME.findall(text) if not _imports(n)]
    for picture in MERMAID.findall(text):
        problems += picture_problems(picture)
    return problems


def test_the_architecture_doc_names_only_what_exists():
    text = DOC.read_text()
    assert len(MERMAID.findall(text)) == 1, "one picture of the layers and the path of a decision"
    assert stale_references(text) == []


def test_the_worked_examples_module_is_the_tested_one():
    """The worked example names a module that does not exist, on purpose: its code is the test's."""
    assert f"`{EXAMPLE_MODULE}`" in DOC.read_text() and not (ROOT / EXAMPLE_MODULE).exists()
    assert "class LeastPods:" in EXAMPLE_TEST.read_text()


def test_the_checker_fails_on_made_up_names():
    text = DOC.read_text()
    made_up = text + (
        "\nSee `neurokube/live/nowhere.py`, `live/elsewhere.py`, `neurokube.live.nowhere` and "
        "`neurokube.live.ledger.NoSuchThing`.\n"
        '```mermaid\nflowchart TB\n    X["live.nowhere Ledger.fly: no_such_function, NoSuchClass, '
        'neurokube/gone"]\n```\n')
    assert stale_references(made_up) == [
        "no such path neurokube/live/nowhere.py",
        "no such path neurokube/gone",
        "no such path live/elsewhere.py",
        "no module or name neurokube.live.nowhere",
        "no module or name neurokube.live.ledger.NoSuchThing",
        "picture: no such path neurokube/gone",
        "picture: no module or name neurokube.live.nowhere",
        "picture: no class Ledger with fly",
        "picture: no_such_function is defined nowhere in neurokube, functions, pipelines",
        "picture: NoSuchClass is defined nowhere in neurokube, functions, pipelines",
    ]
    crowded = "flowchart TB\n" + "".join(f'    N{i}["node {i}"]\n' for i in range(MAX_PICTURE_NODES + 1))
    assert picture_problems(crowded) == [f"the picture has {MAX_PICTURE_NODES + 1} nodes (at most 30)"]
