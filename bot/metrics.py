"""Prometheus metrics of the service, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "classroom_webhook_deliveries",
            "Webhook deliveries by event and outcome.",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.intake_seconds = Histogram(
            "classroom_webhook_intake_seconds",
            "Time from a delivery's arrival to its answer.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.jobs = Gauge(
            "classroom_jobs", "Jobs by kind and state.", ["kind", "state"], registry=self.registry
        )
        self.github_requests = Counter(
            "classroom_github_requests",
            "Requests the service made to GitHub, by status.",
            ["status"],
            registry=self.registry,
        )
        self.github_rate_limit_remaining = Gauge(
            "classroom_github_rate_limit_remaining",
            "GitHub's x-ratelimit-remaining on the latest answer.",
            registry=self.registry,
        )

    def set_job_counts(self, counts: dict[tuple[str, str], int]) -> None:
        self.jobs.clear()
        for (kind, state), count in counts.items():
            self.jobs.labels(kind=kind, state=state).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
