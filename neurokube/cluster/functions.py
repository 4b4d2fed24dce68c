"""``neurokube cluster up --functions``: the live functions as local processes beside the cluster.

What Knative does in a real cluster, done by hand on 127.0.0.1:

* the binder, extender and sweeper run as ``python -m functions_framework --signature-type http``
  (gunicorn, one worker, ``threads`` threads) on free ports, never 8080 (the receive adapter's);
* each authenticates as its own ServiceAccount of deploy/knative/rbac.yaml, with a token from the
  TokenRequest API, so the local setup proves that each least-privilege role is enough;
* the receive adapter's sink (``K_SINK``) is the binder, and it authenticates as Knative's does
  with OIDC on: a JWT from the TokenRequest API for the binder's audience (:data:`AUDIENCES`),
  which the binder verifies against the apiserver's issuer keys;
* a small timer process posts a PingSource-shaped CloudEvent to the sweeper every minute, with
  the static event token (``NEUROKUBE_EVENT_TOKEN``, generated per run and kept in
  ``<state>/functions-event-token``, mode 0600, for whoever wants to post an event by hand);
* the extender runs with ``NEUROKUBE_INSECURE=1`` on 127.0.0.1: kube-scheduler's extender client
  can send neither a token nor a JWT (in a cluster a NetworkPolicy admits only kube-scheduler);
* optionally kube-scheduler's configuration gets an ``extenders:`` entry pointing at the extender.

Every process is recorded in ``cluster.json``, so ``cluster down`` stops them with the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.cluster import components, paths, schedconfig
from neurokube.cluster.components import Launch
from neurokube.cluster.state import Layout
from neurokube.errors import InputError, TemporaryError

NAMESPACE = "neurokube"
#: Each function's own ServiceAccount (deploy/knative/rbac.yaml: least privilege per function).
SERVICE_ACCOUNTS = {"binder": "neurokube-binder", "extender": "neurokube-extender", "sweeper": "neurokube-sweeper"}
SERVICE_ACCOUNT = SERVICE_ACCOUNTS["binder"]
_KUBECONFIG_KEY = "NK_LOCAL_KUBECONFIG_"  # + NAME: the function's own kubeconfig (not passed on as such)
APPLY_PATCH = "application/apply-patch+yaml"
FUNCTIONS = {  # name -> (source relative to the repository, http target)
    "binder": ("functions/binder/main.py", "binder"),
    "extender": ("functions/extender/main.py", "extender"),
    "sweeper": ("functions/sweeper/main.py", "sweeper"),
}
RBAC_FILES = ("namespace.yaml", "rbac.yaml")
#: The OIDC audience of each function: Knative's ``<group>/<kind>/<namespace>/<name>`` of its
#: Service (deploy/knative/services.yaml), the audience its senders request tokens for.
AUDIENCES = {name: f"serving.knative.dev/service/{NAMESPACE}/neurokube-{name}" for name in ("binder", "sweeper")}
EVENT_TOKEN_FILE = "functions-event-token"
AVOID_PORTS = {8080, 8008}  # the receive adapter's probe and default pprof ports
PING_TYPE = "dev.knative.sources.ping"


#: The binder's THREADS and containerConcurrency in deploy/knative/services.yaml: how many pod events
#: one replica places at a time. Local runs that compare the binder with kube-scheduler use it.
BINDER_THREADS = 64


@dataclass(frozen=True)
class FunctionsOptions:
    extender: bool = False
    """Add the extender to kube-scheduler's configuration (filter and prioritize)."""
    extender_weight: int = 5
    model_dir: Path | None = None
    prometheus_url: str | None = None
    sweep_every_s: float = 60.0
    threads: int = 8
    env: dict[str, str] = field(default_factory=dict)
    """Extra NEUROKUBE_* settings for all three functions."""


@dataclass(frozen=True)
class Plan:
    ports: dict[str, int]

    def url(self, name: str) -> str:
        return f"http://{components.LOCALHOST}:{self.ports[name]}"

    @property
    def sink(self) -> str:
        return self.url("binder") + "/"


def repo_root() -> Path:
    return paths.deploy_dir().parent.parent


def knative_dir() -> Path:
    return paths.deploy_dir().parent / "knative"


def plan() -> Plan:
    """Free ports for the three functions (none of them 8080)."""
    while True:
        ports = components.free_ports(tuple(FUNCTIONS))
        if not set(ports.values()) & AVOID_PORTS:
            return Plan(ports)


def extender_config(plan_: Plan, options: FunctionsOptions) -> schedconfig.Extender | None:
    if not options.extender:
        return None
    return schedconfig.Extender(plan_.url("extender"), schedconfig.DEFAULT_VERBS, options.extender_weight)


# -- credentials -------------------------------------------------------------------------------


def apply_manifests(client: KubeClient, files: tuple[str, ...] = RBAC_FILES) -> list[str]:
    """Server-side apply deploy/knative/<files> (idempotent); returns ``kind/name`` of each object."""
    applied = []
    for name in files:
        path = knative_dir() / name
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise InputError("unreadable manifest", where=str(path), why=str(exc)) from None
        for doc in docs:
            applied.append(_apply(client, doc))
    return applied


def _apply(client: KubeClient, doc: dict) -> str:
    api_version, kind = doc["apiVersion"], doc["kind"]
    meta = doc["metadata"]
    plural = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "ClusterRole": "clusterroles",
              "ClusterRoleBinding": "clusterrolebindings", "Role": "roles", "RoleBinding": "rolebindings",
              "ConfigMap": "configmaps"}[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = meta.get("namespace")
    collection = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    try:
        client.request("PATCH", f"{collection}/{meta['name']}?fieldManager=neurokube&force=true", doc,
                       content_type=APPLY_PATCH)
    except KubeError as exc:
        raise TemporaryError(f"applying {kind} {meta['name']} failed: {exc}") from None
    return f"{kind}/{meta['name']}"


def service_account_kubeconfig(client: KubeClient, layout: Layout, ca_file: Path, server: str,
                               expiration_s: int = 30 * 86400, account: str = SERVICE_ACCOUNT) -> Path:
    """A kubeconfig that authenticates as ``account`` in the functions' namespace (TokenRequest API)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_s}}
    try:
        reply = client.create(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token", body)
    except KubeError as exc:
        raise TemporaryError(f"requesting a token for {NAMESPACE}/{account} failed: {exc}") from None
    path = layout.kubeconfig(account)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": account,
           "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
           "users": [{"name": account, "user": {"token": reply["status"]["token"]}}],
           "contexts": [{"name": account, "context": {"cluster": "local", "user": account}}]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(yaml.safe_dump(doc))
    return path


def service_account_kubeconfigs(client: KubeClient, layout: Layout, ca_file: Path, server: str) -> dict[str, Path]:
    """One kubeconfig per function, each for that function's own ServiceAccount."""
    return {name: service_account_kubeconfig(client, layout, ca_file, server, account=account)
            for name, account in SERVICE_ACCOUNTS.items()}


# -- processes ---------------------------------------------------------------------------------


def function_env(kubeconfig: Path | dict[str, Path], options: FunctionsOptions, replica: str) -> dict[str, str]:
    """The environment the three functions share; ``NEUROKUBE_EVENT_TOKEN`` is generated unless
    ``options.env`` gives one (the per-function authentication is :func:`auth_env`). With one
    kubeconfig per function (:func:`service_account_kubeconfigs`), :func:`function_launch` gives
    each function its own."""
    kubeconfigs = kubeconfig if isinstance(kubeconfig, dict) else {}
    default = kubeconfigs.get("binder") if kubeconfigs else kubeconfig
    env = {"KUBECONFIG": str(default), "NEUROKUBE_REPLICA": replica, "WORKERS": "1",
           "THREADS": str(options.threads), "PYTHONUNBUFFERED": "1",
           "NEUROKUBE_EVENT_TOKEN": secrets.token_urlsafe(32),
           **{_KUBECONFIG_KEY + name.upper(): str(path) for name, path in kubeconfigs.items()}, **options.env}
    if options.model_dir:
        env["NEUROKUBE_MODEL_DIR"] = str(options.model_dir)
        # As deployed (deploy/knative/config.yaml): the served model's trees compiled in the background.
        env.setdefault("NEUROKUBE_COMPILED_MODEL_DIR", str(paths.compiled_models_dir()))
    if options.prometheus_url:
        env["NEUROKUBE_PROMETHEUS_URL"] = options.prometheus_url
    return env


def auth_env(name: str) -> dict[str, str]:
    """How each function authenticates its callers locally: the binder and sweeper accept the
    event token and OIDC tokens for their own audience; the extender is open on loopback (see
    the module docstring). Values in the function's environment take precedence."""
    if name == "extender":
        return {"NEUROKUBE_INSECURE": "1"}
    return {"NEUROKUBE_OIDC_AUDIENCE": AUDIENCES[name]}


def function_launch(name: str, port: int, env: dict[str, str], process_name: str | None = None) -> Launch:
    own = env.get(_KUBECONFIG_KEY + name.upper())
    env = {**auth_env(name), **{k: v for k, v in env.items() if not k.startswith(_KUBECONFIG_KEY)}}
    if own:
        env["KUBECONFIG"] = own
    source, target = FUNCTIONS[name]
    argv = [sys.executable, "-m", "functions_framework", "--target", target, "--source",
            str(repo_root() / source), "--signature-type", "http", "--host", components.LOCALHOST,
            "--port", str(port)]
    # /readyz also starts the function's watch cache: ready means warm (listed nodes and pods).
    url = f"http://{components.LOCALHOST}:{port}/readyz"
    return Launch(process_name or name, argv, lambda: _http_ok(url), 60.0, env=env)


def timer_launch(url: str, every_s: float, token: str) -> Launch:
    argv = [sys.executable, "-m", "neurokube.cluster.functions", "tick", "--url", url, "--every", str(every_s)]
    return Launch("sweep-timer", argv, lambda: True, 5.0, env={"NEUROKUBE_EVENT_TOKEN": token})


def launches(plan_: Plan, options: FunctionsOptions, client: KubeClient, layout: Layout, ca_file: Path,
             server: str) -> list[Launch]:
    """Grant the ServiceAccount its role, get it a token, and describe the four processes."""
    apply_manifests(client)
    shared = function_env(service_account_kubeconfigs(client, layout, ca_file, server), options, "")
    token = shared["NEUROKUBE_EVENT_TOKEN"]
    token_file = layout.root / EVENT_TOKEN_FILE
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    out = [function_launch(name, plan_.ports[name], {**shared, "NEUROKUBE_REPLICA": f"local-{name}"})
           for name in FUNCTIONS]
    out.append(timer_launch(plan_.url("sweeper") + "/", options.sweep_every_s, token))
    return out


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


# -- the minute timer (a PingSource stand-in) --------------------------------------------------


def ping(url: str, source: str = "/apis/v1/namespaces/neurokube/pingsources/neurokube-sweep",
         timeout_s: float = 120.0, token: str | None = None) -> dict:
    """POST one ``dev.knative.sources.ping`` CloudEvent (binary mode) and return the JSON answer;
    ``token`` (default ``$NEUROKUBE_EVENT_TOKEN``) goes in ``Authorization: Bearer``."""
    headers = {"ce-specversion": "1.0", "ce-type": PING_TYPE, "ce-source": source, "ce-id": str(uuid.uuid4()),
               "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "Content-Type": "application/json"}
    token = token or os.environ.get("NEUROKUBE_EVENT_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read() or b"{}")


def tick_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurokube.cluster.functions tick")
    parser.add_argument("--url", required=True)
    parser.add_argument("--every", type=float, default=60.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(args.every):
        try:
            report = ping(args.url)
            print(json.dumps({"ts": round(time.time(), 3), "msg": "sweep", **report}), flush=True)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(json.dumps({"ts": round(time.time(), 3), "msg": "sweep failed", "error": str(exc)}), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - the timer process
    if len(sys.argv) > 1 and sys.argv[1] == "tick":
        sys.exit(tick_main(sys.argv[2:]))
    sys.exit(2)
