"""Prometheus metrics of the node, on their own registry so tests can run several nodes."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


@dataclass
class NodeMetrics:
    """All node metrics; ``METRICS`` is the process-wide instance."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter(
            "yigong_node_received_instances", "Instances accepted and spooled", registry=r)
        self.received_bytes = Counter(
            "yigong_node_received_bytes", "Bytes accepted and spooled", registry=r)
        self.rejected = Counter(
            "yigong_node_rejected_instances", "Instances refused, by status", ["status"],
            registry=r)
        self.forwarded = Counter(
            "yigong_node_forwarded_instances", "Instances the hub confirmed", registry=r)
        self.forward_errors = Counter(
            "yigong_node_forward_errors", "Failed forwarding attempts, by kind", ["kind"],
            registry=r)
        self.quarantined = Counter(
            "yigong_node_quarantined_instances", "Instances the hub refused for good",
            registry=r)
        self.wire_bytes = Counter(
            "yigong_node_wire_bytes", "Bytes sent to the hub (after compression)", registry=r)
        self.manifests_posted = Counter(
            "yigong_node_manifests_posted", "Study manifests the hub accepted", registry=r)
        self.manifest_failures = Counter(
            "yigong_node_manifest_failures", "Failed manifest posts", registry=r)
        self.queue_depth = Gauge(
            "yigong_node_queue_depth", "Instances waiting in the spool", registry=r)
        self.store_seconds = Histogram(
            "yigong_node_store_seconds", "Receive handler time (parse + durable write)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0), registry=r)
        self.forward_seconds = Histogram(
            "yigong_node_forward_seconds", "Time to forward one instance",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0), registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``host:port`` (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)


METRICS = NodeMetrics()
