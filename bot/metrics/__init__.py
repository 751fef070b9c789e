"""Prometheus metrics: runs, latency, approvals, errors, queues, tasks (`[metrics]`)."""

from bot.metrics.server import MetricsServer

__all__ = ["MetricsServer"]
