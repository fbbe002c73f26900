"""A replicated KRaft cluster on 127.0.0.1: three broker+controller nodes, for fault tests.

Every node is a :class:`devkafka.broker.KafkaBroker` (same jars, small heaps) formatted with one
cluster id and the same three controller voters. Topics default to replication factor 3 and
``min.insync.replicas=2``, and so do the offsets and transaction-state topics: one node may
die without stopping producers with ``acks=all``, consumers or transactions.

    cluster = KafkaCluster(tmp_dir)
    cluster.start()                    # all nodes at once: none answers before a quorum
    leader = cluster.leader_of("topic", 0)
    cluster.nodes[leader].kill()       # SIGKILL: a crashed broker
    cluster.nodes[leader].start()      # back with its data
    cluster.stop()
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from devkafka.broker import BrokerError, KafkaBroker, free_port, new_cluster_id

__all__ = ["KafkaCluster"]

_REPLICATED = [
    "default.replication.factor=3",
    "min.insync.replicas=2",
    "offsets.topic.replication.factor=3",
    "transaction.state.log.replication.factor=3",
    "transaction.state.log.min.isr=2",
    "num.partitions=3",
    "unclean.leader.election.enable=false",
    "num.replica.fetchers=1",
    "num.network.threads=1",
    "num.io.threads=2",
    "background.threads=2",
]


@dataclass
class KafkaCluster:
    """``size`` KRaft nodes, each broker and controller, node ids 1..size."""

    data_dir: Path
    size: int = 3
    heap: str = "256m"
    nodes: dict[int, KafkaBroker] = field(default_factory=dict)
    started_in_s: float = 0.0

    def __post_init__(self) -> None:
        controller_ports = {n: free_port() for n in range(1, self.size + 1)}
        voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in controller_ports.items())
        cluster_id = new_cluster_id()
        for node_id, controller_port in controller_ports.items():
            self.nodes[node_id] = KafkaBroker(
                self.data_dir / f"node-{node_id}",
                controller_port=controller_port,
                heap=self.heap,
                node_id=node_id,
                voters=voters,
                cluster_id=cluster_id,
                extra_properties=list(_REPLICATED),
            )

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes.values())

    def start(self, timeout_s: float = 180.0) -> None:
        """Start every node, then wait until the cluster lists all of them."""
        began = time.monotonic()
        for node in self.nodes.values():
            node.launch()
        try:
            for node in self.nodes.values():
                node.wait_until_ready(began + timeout_s)
            self.wait_for_brokers(self.size, began + timeout_s)
        except BrokerError:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began

    def wait_for_brokers(self, count: int, deadline: float) -> None:
        """Block until the metadata lists ``count`` live brokers."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            try:
                if len(admin.list_topics(timeout=2).brokers) >= count:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise BrokerError(f"fewer than {count} brokers registered in time")

    def leader_of(self, topic: str, partition: int) -> int:
        """Node id of the partition's current leader."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        return int(admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)

    def rss_mib(self) -> float:
        return sum(node.rss_mib() for node in self.nodes.values())

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
