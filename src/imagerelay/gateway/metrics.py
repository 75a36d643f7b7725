"""Prometheus metrics of one gateway process (`GET /metrics`), via prometheus-client.

Counted when a generation ends, not when its answer is sent: a request whose client went away
still counts its images and cost. Each process has its own registry; with `--workers N`, scrape
each worker or sum them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from ..receipt import Receipt

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The gateway's counters: requests, images, cost, attempts by outcome, latency, in flight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "imagerelay_requests",
            "Requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.images = Counter(
            "imagerelay_images", "Images saved, by provider and model.", ["provider", "model"], registry=r
        )
        self.cost = Counter(
            "imagerelay_cost_usd",
            "USD spent (the provider's figure when it gave one, else the estimate), by gateway key.",
            ["key", "provider", "model"],
            registry=r,
        )
        self.possibly_billed = Counter(
            "imagerelay_possibly_billed_usd",
            "USD failed attempts may have been billed, by gateway key.",
            ["key"],
            registry=r,
        )
        self.attempts = Counter(
            "imagerelay_attempts",
            "Calls to provider models, by outcome (success, transient, provider, content_blocked …).",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "imagerelay_request_duration_seconds",
            "Time from request to answer, by endpoint.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.in_flight = Gauge("imagerelay_generations_in_flight", "Generations running now.", registry=r)

    def record(self, receipt: Receipt, key: str) -> None:
        """Count what one finished (or failed) request made and spent."""
        for image in receipt.images:
            self.images.labels(image.provider, image.model).inc()
        if receipt.cost_usd:
            self.cost.labels(key, receipt.provider or "", receipt.model or "").inc(receipt.cost_usd)
        if receipt.possibly_billed_usd:
            self.possibly_billed.labels(key).inc(receipt.possibly_billed_usd)
        for attempt in receipt.attempts:
            self.attempts.labels(attempt.provider, attempt.model, attempt.outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
