"""Prometheus metrics of the service, on a registry of its own (one per app)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bot.github.client import GitHubApp

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.collectors = CollectorRegistry()
        self.deliveries = Counter(
            "classroom_webhook_deliveries",
            "Webhook deliveries by event and outcome.",
            ["event", "outcome"],
            registry=self.collectors,
        )
        # No labels, so the series is there (at 0) from the start: an alert can watch it.
        self.handler_errors = Counter(
            "webhook_handler_errors",
            "Deliveries whose handler raised (answered 200, logged with the delivery id).",
            registry=self.collectors,
        )
        self.intake_seconds = Histogram(
            "classroom_webhook_intake_seconds",
            "Time from a delivery's arrival to its answer.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.collectors,
        )
        self.jobs = Gauge(
            "classroom_jobs", "Jobs by kind and state.", ["kind", "state"], registry=self.collectors
        )
        self.github: GitHubApp | None = None  # read at each scrape
        self.collectors.register(GitHubCollector(self))

    def set_job_counts(self, counts: dict[tuple[str, str], int]) -> None:
        self.jobs.clear()
        for (kind, state), count in counts.items():
            self.jobs.labels(kind=kind, state=state).set(count)

    def render(self) -> bytes:
        return generate_latest(self.collectors)


class GitHubCollector(Collector):
    """Reads the GitHub client's own counters when Prometheus scrapes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "classroom_github_requests", "Requests made to GitHub, by status.", labels=["status"]
        )
        remaining = GaugeMetricFamily(
            "classroom_github_rate_limit_remaining", "GitHub's latest x-ratelimit-remaining."
        )
        github = self.metrics.github
        if github is not None:
            for status, count in sorted(github.requests_by_status.items()):
                requests.add_metric([str(status)], count)
            if github.rate_limit_remaining is not None:
                remaining.add_metric([], github.rate_limit_remaining)
        yield requests
        yield remaining
