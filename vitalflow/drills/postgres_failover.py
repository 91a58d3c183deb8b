"""Drill postgres-failover: a Patroni cluster broken four ways while `vitalflow run` writes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from vitalflow.drills.base import DrillOptions, DrillResult, Teardown, wait_until
from vitalflow.drills.state import state_at
from vitalflow.drills.pg_cluster import Cluster, Node
from vitalflow.drills.pg_workload import PipelineJob, WriteProbe, set_up

NAME = "postgres-failover"
_RUN_TIMEOUT = 3600  # a 1M run with a failover in it, on a loaded 2-core machine
_FAILOVER_TIMEOUT = 120  # ttl 20 s, a stopped leader's REST timeouts, an election
_HEAL_TIMEOUT = 600  # a 1M database copied again to a rejoining node on a loaded machine


def run(options: DrillOptions, teardown: Teardown) -> DrillResult:
    result = DrillResult(NAME, ok=False)
    setup = set_up(options, teardown, result)
    if setup is None:
        return result
    cluster, input_dir, key, observations = (setup.cluster, setup.input_dir, setup.key,
                                             setup.observations)
    clean = PipelineJob(cluster, "clean", options.workdir / "clean", input_dir, key)
    code, summary, clean_s = clean.start(teardown).wait(_RUN_TIMEOUT)
    if code != 0:
        result.notes.append(f"the run without failure failed: {clean.stderr_tail()}")
        return result
    reference = state_at(cluster.url(database="clean"))
    refine_s = summary.get("seconds", {}).get("refine", 0.0)
    scenarios = ["leader_kill", "leader_kill_async"] if options.quick else list(SCENARIOS)
    details: dict = {"observations": observations, "clean_run_s": round(clean_s, 1),
                     "synchronous_mode": True, "scenarios": {}}
    result.details = details
    for name in scenarios:
        job = PipelineJob(cluster, f"run_{name}", options.workdir / name, input_dir, key)
        try:
            details["scenarios"][name] = _scenario(name, cluster, job, teardown, reference,
                                                   clean_s, refine_s)
        except (TimeoutError, RuntimeError) as exc:  # the cluster did not come back: stop
            result.notes.append(f"scenario {name} failed: {exc}")
            return result
    kill = details["scenarios"]["leader_kill"]
    result.rto_s, result.acknowledged_lost = kill["rto_s"], kill["acknowledged_lost"]
    result.counts_exact, result.extra_run_s = kill["counts_exact"], kill["extra_run_s"]
    synchronous = [s for n, s in details["scenarios"].items() if not n.endswith("_async")]
    result.ok = all(s["run_exit"] == 0 and s["acknowledged_lost"] == 0 and s["counts_exact"]
                    for s in synchronous)
    result.notes.append("asynchronous mode (leader_kill_async) may lose acknowledged rows; "
                        "it is shown, not judged")
    return result


def _scenario(name: str, cluster: Cluster, job: PipelineJob, teardown: Teardown,
              reference: dict, clean_s: float, refine_s: float) -> dict:
    """Start the probe and the run, break the cluster in refine, let the run finish, count."""
    if name.endswith("_async"):
        _set_synchronous(cluster, False)
    cluster.create_database(f"probe_{name}")
    probe = WriteProbe(cluster.url(database=f"probe_{name}")).start()
    job.start(teardown)
    try:
        wait_until(job.refining, _RUN_TIMEOUT, 0.05, "the run refining")
        time.sleep(refine_s * 0.3)  # well inside refine, not at its first statement
        broken_at = time.monotonic()
        what = SCENARIOS[name.removesuffix("_async")](cluster)
        code, _, seconds = job.wait(_RUN_TIMEOUT)
        # The old leader rejoins as a replica (pg_rewind, or a new base backup of the whole
        # database under load): the next scenario needs every node back.
        healed = wait_until(cluster.healthy, _HEAL_TIMEOUT, 0.5, "the cluster whole again")
        time.sleep(1)  # a few acks on the healed cluster
    finally:
        probe.stop()
    state = state_at(cluster.url(database=job.database))
    differing = [table for table in reference if state.get(table) != reference[table]]
    exact = code == 0 and not [t for t in differing if not _same_count(t, state, reference)]
    lost = probe.lost(cluster.url(database=f"probe_{name}"))
    return {"rto_s": round(probe.longest_gap(broken_at), 2), "acknowledged_lost": lost,
            "counts_exact": exact, "extra_run_s": round(seconds - clean_s, 1),
            "run_exit": code, "run_s": round(seconds, 1), "healed_after_run_s": round(healed, 1),
            "probe_acks": len(probe.acks),
            "probe_attempts": probe.attempts, **what,
            # tables not identical to the clean run's, timestamps aside (counts_exact says
            # whether that matters)
            **({"tables_differing": differing} if differing else {}),
            **({"run_error": job.stderr_tail()} if code else {})}


def _same_count(table: str, state: dict, reference: dict) -> bool:
    """A refined table may differ from the clean run's in which raw record an exact duplicate
    line was refined from (refine's tie-break on large inputs): the same rows count as equal.
    Derived tables must be equal row for row."""
    count = (state.get(table) or "").split(":")[0]
    return table.startswith("refined.") and count == reference[table].split(":")[0]


def _set_synchronous(cluster: Cluster, on: bool) -> None:
    leader = cluster.leader()
    status, _ = leader.rest("/config", {"synchronous_mode": on}, method="PATCH")
    if status != 200:
        raise RuntimeError(f"Patroni refused synchronous_mode={on} (HTTP {status})")
    cluster.synchronous = on  # what healthy() expects
    wait_until(lambda: (cluster.sync_standby() is not None) == on, 60, 0.5,
               f"synchronous_mode {on}")


def _new_leader(cluster: Cluster, old: Node) -> float:
    return wait_until(lambda: (n := cluster.leader()) is not None and n.name != old.name,
                      _FAILOVER_TIMEOUT, 0.1, "a new leader")


def leader_kill(cluster: Cluster) -> dict:
    """kill -9 of the leader's postmaster: Patroni does not restart it in place
    (primary_start_timeout 0), a replica takes the leader key."""
    old = cluster.leader()
    os.kill(old.postmaster_pid(), signal.SIGKILL)
    elected = _new_leader(cluster, old)
    return {"old_leader": old.name, "new_leader": cluster.leader().name,
            "election_s": round(elected, 2)}


def switchover(cluster: Cluster) -> dict:
    """A planned switchover to the synchronous standby through Patroni's REST API."""
    old, candidate = cluster.leader(), cluster.sync_standby()
    status, _ = old.rest("/switchover", {"leader": old.name, "candidate": candidate.name},
                         timeout=60)
    if status != 200:
        raise RuntimeError(f"Patroni refused the switchover (HTTP {status})")
    elected = _new_leader(cluster, old)
    return {"old_leader": old.name, "new_leader": cluster.leader().name,
            "election_s": round(elected, 2)}


def replica_loss(cluster: Cluster) -> dict:
    """kill -9 of the synchronous standby's postmaster: the leader must name another standby
    before it acknowledges more commits; Patroni restarts the killed one."""
    victim = cluster.sync_standby()
    killed = victim.postmaster_pid()
    os.kill(killed, signal.SIGKILL)
    back = wait_until(lambda: victim.postmaster_pid() not in (None, killed)
                      and cluster.healthy(), _FAILOVER_TIMEOUT, 0.1, "the replica back")
    return {"killed_replica": victim.name, "replica_back_s": round(back, 2)}


def leader_partition(cluster: Cluster) -> dict:
    """The leader's Patroni, postmaster and backends stopped (SIGSTOP) until another node is
    leader, then let go (SIGCONT): it must rejoin as a replica."""
    old = cluster.leader()
    stopped = cluster.processes_of(old)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        elected = _new_leader(cluster, old)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    return {"old_leader": old.name, "new_leader": cluster.leader().name,
            "election_s": round(elected, 2), "stopped_processes": len(stopped)}


SCENARIOS: dict[str, Callable[[Cluster], dict]] = {
    "leader_kill": leader_kill, "switchover": switchover, "replica_loss": replica_loss,
    "leader_partition": leader_partition, "leader_kill_async": leader_kill,
}
