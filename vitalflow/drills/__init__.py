"""Failover, replica and chaos drills: real replicated services broken while the pipeline works."""

# name -> (module under vitalflow.drills, one line for `vitalflow drill --help`). Modules are
# imported only when their drill runs: each pulls in its own services (Patroni, Prefect, ...).
DRILLS: dict[str, tuple[str, str]] = {
    "postgres-failover": ("postgres_failover", "Patroni cluster behind HAProxy: leader killed, "
                          "switchover, replica lost, leader partitioned; RTO and lost rows."),
    "replica-reads": ("replica_reads", "Benchmark queries on 0, 1 and 2 replicas while the "
                      "pipeline writes; replication lag."),
    "object-store-loss": ("object_store_loss", "SeaweedFS with replicated volumes: a volume "
                          "server killed during a lakehouse run."),
    "clickhouse": ("clickhouse", "What a replicated ClickHouse needs (chdb has no replication)."),
    "worker-scaling": ("worker_scaling", "Prefect process workers on person-hash partitions; "
                       "a worker killed mid-partition."),
    "chaos": ("chaos", "Random kills of the pipeline, database, object store and terminology "
              "server during repeated runs."),
}
