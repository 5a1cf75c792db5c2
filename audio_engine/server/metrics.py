"""Prometheus metrics of the engine's gRPC server, built in ``serve()`` and passed down.

With several worker processes, ``prometheus_client``'s multiprocess mode aggregates them
(``PROMETHEUS_MULTIPROC_DIR`` is set by the parent before the workers start); gauges then sum
the live processes' values.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["EngineMetrics", "create_metrics"]

_DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class EngineMetrics:
    """The server's instruments.

    Attributes
    ----------
    streams_active : Gauge
        Streams attached to a live call.
    streams_kept : Gauge
        Streams cut without EndOfStream, kept for a resume.
    streams_total : Counter
        Streams opened, by ``kind`` (``new``, ``resumed``; ``taken_over``: resumed from a
        call that still held the stream; ``restored``: resumed from the checkpoint of
        another engine process).
    stream_endings_total : Counter
        Streams that ended, by ``outcome`` (``completed``, ``failed``, ``expired``,
        ``shutdown``; ``moved``: resumed in another engine process).
    chunks_total : Counter
        Audio chunks analysed.
    duplicate_chunks_total : Counter
        Chunks ignored because their sequence was already received (resends after a resume).
    audio_seconds_total : Counter
        Seconds of audio analysed.
    events_total : Counter
        Events sent, by ``type``.
    event_delay_seconds : Histogram
        Wall time from receiving a chunk to sending an event it produced.
    event_lag_seconds : Histogram
        Audio time between an event and the end of the audio received when it was sent
        (the analysis' look-ahead).
    errors_total : Counter
        Calls ended with an error, by status ``code``.
    summaries_published_total : Counter
        ``stream.summary.v1`` events handed to the durable queue.
    """

    streams_active: Gauge
    streams_kept: Gauge
    streams_total: Counter
    stream_endings_total: Counter
    chunks_total: Counter
    duplicate_chunks_total: Counter
    audio_seconds_total: Counter
    events_total: Counter
    event_delay_seconds: Histogram
    event_lag_seconds: Histogram
    errors_total: Counter
    summaries_published_total: Counter


def create_metrics(registry: CollectorRegistry | None) -> EngineMetrics:
    """Create the instruments in ``registry`` (None: registered nowhere, as in a worker of
    the multiprocess mode, whose values are collected from the shared directory)."""
    prefix = "mpt_engine_"
    return EngineMetrics(
        streams_active=Gauge(
            prefix + "streams_active",
            "Streams attached to a live call",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        streams_kept=Gauge(
            prefix + "streams_kept",
            "Streams cut without EndOfStream, kept for a resume",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        streams_total=Counter(
            prefix + "streams_total", "Streams opened", ["kind"], registry=registry
        ),
        stream_endings_total=Counter(
            prefix + "stream_endings_total", "Streams ended", ["outcome"], registry=registry
        ),
        chunks_total=Counter(prefix + "chunks_total", "Audio chunks analysed", registry=registry),
        duplicate_chunks_total=Counter(
            prefix + "duplicate_chunks_total",
            "Chunks ignored as already received",
            registry=registry,
        ),
        audio_seconds_total=Counter(
            prefix + "audio_seconds_total", "Seconds of audio analysed", registry=registry
        ),
        events_total=Counter(prefix + "events_total", "Events sent", ["type"], registry=registry),
        event_delay_seconds=Histogram(
            prefix + "event_delay_seconds",
            "Wall time from receiving a chunk to sending an event it produced",
            buckets=_DELAY_BUCKETS,
            registry=registry,
        ),
        event_lag_seconds=Histogram(
            prefix + "event_lag_seconds",
            "Audio time between an event and the end of the audio received when it was sent",
            buckets=_LAG_BUCKETS,
            registry=registry,
        ),
        errors_total=Counter(
            prefix + "errors_total", "Calls ended with an error", ["code"], registry=registry
        ),
        summaries_published_total=Counter(
            prefix + "summaries_published_total",
            "stream.summary.v1 events handed to the durable queue",
            registry=registry,
        ),
    )
