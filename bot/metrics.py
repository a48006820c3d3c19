"""Prometheus metrics of one worker: updates handled and their latency, outbox depth, open cases, FAQ confidence."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
UPDATES = Counter("prakerja_updates_total", "Telegram updates by outcome", ["outcome"], registry=REGISTRY)
UPDATE_SECONDS = Histogram(
    "prakerja_update_seconds",
    "Time to handle one update, commit included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge("prakerja_outbox_pending", "Outbox messages waiting to be sent", ["lane"], registry=REGISTRY)
CASES_OPEN = Gauge("prakerja_cases_open", "Cases waiting for or with an agent", registry=REGISTRY)
FAQ_SCORE = Histogram(
    "prakerja_faq_match_score",
    "Best FAQ match score per question, by the matcher's decision",
    ["kind"],
    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
    registry=REGISTRY,
)


def observe_faq(kind: str, score: float) -> None:
    FAQ_SCORE.labels(kind=kind).observe(score)
