"""RBAC for the identities this tool creates beyond the apiserver's bootstrap roles."""

from __future__ import annotations

from neurokube.adapters.kube import KubeClient, KubeError
from neurokube.cluster.adapter import OIDC_SERVICE_ACCOUNT, SOURCE_NAMESPACE
from neurokube.cluster.certs import CLIENTS
from neurokube.errors import TemporaryError

ADAPTER_ROLE = "neurokube:apiserver-source-adapter"

#: What the receive adapter needs when it watches pods in all namespaces (the same rules the
#: ApiServerSource controller would grant its service account), plus the ConfigMaps its
#: injection framework lists (trust bundles) and the Events it reports problems with.
ADAPTER_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def grant_adapter(client: KubeClient) -> None:
    """The adapter's ClusterRole, its OIDC ServiceAccount and the right to request that account's
    tokens (``serviceaccounts/token`` create, on that one name only); idempotent."""
    user = CLIENTS["receive-adapter"].user
    namespace, account = SOURCE_NAMESPACE, OIDC_SERVICE_ACCOUNT
    token_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                  "metadata": {"name": ADAPTER_ROLE, "namespace": namespace},
                  "rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"],
                             "resourceNames": [account]}]}
    token_binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": ADAPTER_ROLE, "namespace": namespace},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ADAPTER_ROLE},
                     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
    for path, body in ((f"/api/v1/namespaces/{namespace}/serviceaccounts",
                        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}),
                       (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", token_role),
                       (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", token_binding)):
        try:
            client.create(path, body)
        except KubeError as exc:
            if not exc.conflict:
                raise TemporaryError(f"granting the receive adapter its OIDC identity failed: {exc}") from None
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": ADAPTER_ROLE}, "rules": ADAPTER_RULES}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": ADAPTER_ROLE},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ADAPTER_ROLE},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
    for path, body in (("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
                       ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)):
        try:
            client.create(path, body)
        except KubeError as exc:
            if not exc.conflict:
                raise TemporaryError(f"granting the receive adapter its role failed: {exc}") from None
