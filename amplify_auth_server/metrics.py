"""Prometheus metrics, one registry per app.

A registry per app rather than the process-global one, so that tests (and
anyone embedding two apps in one process) get independent counters. The
label children used on the validation path are bound once here: looking a
child up by label values on every request would cost more than the work
it measures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from amplify_auth_client.contract import Reason

VALIDATION_RESULTS = ("valid", *get_args(Reason))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.validations = Counter(
            "amplify_auth_validations",
            "Token validations answered, by result.",
            ["result"],
            registry=self.registry,
        )
        self.validation_by_result = {r: self.validations.labels(r) for r in VALIDATION_RESULTS}
        cache = Counter(
            "amplify_auth_cache_requests",
            "Cache lookups on the validation path, by tier and outcome.",
            ["tier", "outcome"],
            registry=self.registry,
        )
        self.local_hit = cache.labels("local", "hit")
        self.local_miss = cache.labels("local", "miss")
        self.redis_hit = cache.labels("redis", "hit")
        self.redis_miss = cache.labels("redis", "miss")
        self.redis_error = cache.labels("redis", "error")
        self.redis_skipped = cache.labels("redis", "skipped")
        #: Calls abandoned past REDIS_READ_BUDGET (each then skips Redis for a second).
        self.redis_slow = cache.labels("redis", "slow")
        self.database_lookups = Counter(
            "amplify_auth_database_lookups",
            "Validation misses answered by the database.",
            registry=self.registry,
        )
        self.coalesced = Counter(
            "amplify_auth_coalesced_lookups",
            "Validation misses that waited for an identical lookup already in flight.",
            registry=self.registry,
        )
        self.commands = Counter(
            "amplify_auth_commands",
            "Write commands executed by the single writer, by command and outcome.",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "amplify_auth_writer_batch_size",
            "Commands the single writer committed together, per batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "amplify_auth_command_queue_depth",
            "Write commands waiting for the single writer.",
            registry=self.registry,
        )
        self.propagation = Histogram(
            "amplify_auth_change_propagation_seconds",
            "From a change's commit until every cache tier and every replica had it, per "
            "command that changed tokens: the revocation lag, as far as the server sees.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "amplify_auth_request_duration_seconds",
            "HTTP request latency, by route template and method.",
            ["method", "route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

        self.failures = Counter(
            "amplify_auth_failures",
            "Failures counted against a client's budget, by kind and where they were counted "
            "(redis, or local: embedded, or while Redis is away).",
            ["kind", "store"],
            registry=self.registry,
        )
        self.throttled = Counter(
            "amplify_auth_throttled",
            "Failures answered 429 because the client was past its budget, by kind.",
            ["kind"],
            registry=self.registry,
        )

        self.event_subscribers = Gauge(
            "amplify_auth_event_subscribers",
            "Clients streaming token changes from this process (GET /auth/events).",
            registry=self.registry,
        )
        self.suspects = Gauge(
            "amplify_auth_cache_suspects",
            "Tokens answered from the database because Redis may not hold their last change.",
            registry=self.registry,
        )

        self.webhook_deliveries = Counter(
            "amplify_auth_webhook_deliveries",
            "Webhook delivery attempts, by event type and result: delivered, retrying "
            "(failed, due again) or given_up (failed past WEBHOOK_RETRY_HOURS).",
            ["type", "result"],
            registry=self.registry,
        )
        self.webhook_backlog = Gauge(
            "amplify_auth_webhook_backlog",
            "Webhook deliveries not yet made (in the database, so the same on every replica).",
            registry=self.registry,
        )
        self.webhook_oldest_age = Gauge(
            "amplify_auth_webhook_oldest_age_seconds",
            "Age of the oldest webhook delivery not yet made; 0 when none waits.",
            registry=self.registry,
        )
        self.webhook_given_up = Gauge(
            "amplify_auth_webhook_given_up",
            "Webhook deliveries given up and kept in the outbox with their last error.",
            registry=self.registry,
        )

    def watch_subscribers(self, count: Callable[[], int]) -> None:
        self.event_subscribers.set_function(lambda: float(count()))

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def watch_suspects(self, count: Callable[[], int]) -> None:
        self.suspects.set_function(lambda: float(count()))
