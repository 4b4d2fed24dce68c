"""Scheduling profiles of the live functions: which policy places the pods of a scheduler name.

A profile file (``NEUROKUBE_PROFILE``) is YAML, one document per profile, shaped like a profile of
kube-scheduler's KubeSchedulerConfiguration::

    schedulerName: neurokube
    policy: "neurokube:node_hour_cost=60"
    ---
    schedulerName: neurokube-tlp
    policy: "tlp:target_utilization=60"

``policy`` is a spec exactly as ``neurokube replay --policy`` takes it (:mod:`neurokube.policies.spec`),
with the same typed arguments: ``neurokube[:key=value,...]`` is the learned policy (its model is
the champion in ``NEUROKUBE_MODEL_DIR``, so ``model=`` is refused, and so is the replay-only wait
action), any other registered name is that peer (``oracle`` is refused: it reads the future).
A function uses the one profile whose ``schedulerName`` is its ``NEUROKUBE_SCHEDULER_NAME``.

Everything is checked at start-up; a bad file raises one :class:`~neurokube.errors.InputError`
naming the file, the document (and its line) and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from neurokube.errors import InputError
from neurokube.model.policy import LearnedArgs
from neurokube.policies.registry import LEARNED, REGISTRY, unknown_policy
from neurokube.policies.spec import PolicySpec, parse_spec, typed_args

KEYS = ("schedulerName", "policy")
NOT_LIVE = {"oracle": "oracle reads the trace's future: a replay reference, not a live policy"}


@dataclass(frozen=True)
class Profile:
    scheduler_name: str
    policy: PolicySpec
    document: int  # 1-based, in file order
    line: int  # 1-based line where the document starts


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def check_policy(spec: PolicySpec) -> None:
    """Raise InputError if ``spec`` cannot run live (unknown name, bad argument, replay-only)."""
    if spec.name == LEARNED:
        args = typed_args(LearnedArgs, spec)
        if args.model is not None:
            raise InputError(f"policy spec {spec.text!r}: model= is not for profiles",
                             why="the live model is the champion in NEUROKUBE_MODEL_DIR")
        if args.max_wait_steps != 0:
            raise InputError(f"policy spec {spec.text!r}: max_wait_steps is replay only",
                             why="live pods are placed as they arrive")
    elif spec.name in NOT_LIVE:
        raise InputError(f"policy {spec.name!r} cannot run live", why=NOT_LIVE[spec.name])
    elif spec.name in REGISTRY:
        typed_args(REGISTRY[spec.name].args, spec)
    else:
        raise unknown_policy(spec.name, learned=True)


def parse_profiles(text: str, source: str) -> list[Profile]:
    """Every profile of a file's ``text`` (``source`` names the file in errors)."""
    loader = _Loader(text)
    profiles: list[Profile] = []
    by_name: dict[str, Profile] = {}
    document = 1  # the document being read, for errors
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1
            where = f"{source}, document {document} (line {line})"
            data = loader.construct_document(node)
            if data is not None:  # None: an empty document (a stray ---)
                profile = _profile(data, where, document, line)
                if profile.scheduler_name in by_name:
                    raise InputError(f"key 'schedulerName': {profile.scheduler_name!r} already has a profile "
                                     f"(document {by_name[profile.scheduler_name].document})", where)
                by_name[profile.scheduler_name] = profile
                profiles.append(profile)
            document += 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"not valid YAML: {' '.join(str(problem).split())}", f"{at}, document {document}") \
            from None
    finally:
        loader.dispose()
    return profiles


def _profile(data: object, where: str, document: int, line: int) -> Profile:
    if not isinstance(data, dict):
        raise InputError("a profile must be a mapping", where, f"keys {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            raise InputError(f"unknown key {key!r}", where, f"a profile has {', '.join(KEYS)}")
    for key in KEYS:
        if key not in data:
            raise InputError(f"key {key!r} is missing", where)
        if not isinstance(data[key], str) or not data[key].strip():
            raise InputError(f"key {key!r}: expected a non-empty string, got {data[key]!r}", where)
    try:
        spec = parse_spec(data["policy"].strip())
        check_policy(spec)
    except InputError as exc:
        raise InputError(f"key 'policy': {exc.what}", where, exc.why) from None
    return Profile(data["schedulerName"].strip(), spec, document, line)


def read_profiles(path: Path) -> list[Profile]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("cannot read the profile file", str(path), getattr(exc, "strerror", None) or str(exc)) \
            from None
    return parse_profiles(text, str(path))


def profile_for(path: Path, scheduler_name: str) -> Profile:
    """The profile of ``scheduler_name`` in the file at ``path`` (InputError if the file is bad or has none)."""
    profiles = read_profiles(path)
    for profile in profiles:
        if profile.scheduler_name == scheduler_name:
            return profile
    names = ", ".join(repr(p.scheduler_name) for p in profiles) or "none"
    raise InputError(f"no profile has schedulerName {scheduler_name!r} (NEUROKUBE_SCHEDULER_NAME)", str(path),
                     f"profiles: {names}")
