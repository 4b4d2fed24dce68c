"""The live learning loop on the local control plane (``neurokube loop live``).

Each day drives the next slice of a trace through the real apiserver, time-compressed, once with
kube-scheduler and once with the NeuroKube binder; the usage each bound pod's profile gives is
served to Prometheus by the metrics emulator, outcomes are read back from Prometheus, and each
night trains on the live records and snapshots in the object store.

* :mod:`.plan` (pure): a trace slice as pods with wall-clock create times and run times;
* :mod:`.usage` (pure): the usage of the pods bound so far, as the emulator's ``UsageSource``;
* :mod:`.outcomes` (pure core, Prometheus at the edge): contention, node-hours and pending time
  of a run, from the series Prometheus scraped.
"""
