"""The nightly learning loop, one module per step.

    simulate  (a day of the world: replay with the champion, decision logs, usage)
    snapshot  (Prometheus or the simulator's usage -> hourly Parquet partitions, spooled when the store is down)
    ingest    (snapshots + decision logs from the store; corrupt or foreign objects quarantined)
    dataset   (decisions joined to their outcomes)
    train     (fit the value model)
    evaluate  (OPE on the logs, replay on a held-out trace against the champion and the default policy)
    register  (MLflow run, model version, promotion rule)
    nightly   (one night: ingest -> ... -> register; ``python -m pipelines.nightly``)
    loop      (N simulated days and nights, behind ``neurokube nightly``)

Typed settings live in :mod:`pipelines.settings`; object keys in :mod:`pipelines.keys`.
"""
