"""A real local Kubernetes control plane without containers, for tests and experiments.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as plain processes on
127.0.0.1; KWOK plays the kubelet of every (fake) node; the Knative ApiServerSource receive
adapter turns pod changes into CloudEvents. See docs/CLUSTER.md.

Modules, one concern each:

* ``pins``, ``build``: pinned versions and the cached Go builds of the binaries;
* ``certs``, ``kubeconfig``: the throw-away PKI and per-component kubeconfigs;
* ``components``, ``schedconfig``, ``adapter``, ``rbac``, ``crds``: how each piece is run and set up;
* ``processes``, ``state``: detached processes and the state directory that records them;
* ``control``: `up`, `status`, `down` (the ``neurokube cluster`` commands are neurokube/cli/cluster_cmd.py);
* ``api``, ``workload``: a minimal REST client, and nodes/pods with given resources;
* ``testing``: fixtures' building blocks (a running cluster, a CloudEvents sink).

Linux only (process identity is read from /proc).
"""
