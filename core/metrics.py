"""Prometheus metrics of one service, on a registry of its own (tests build many services)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge(
            "chatscribe_queue_depth", "Jobs accepted and not yet answered", ["platform"], registry=self.registry
        )
        self.jobs = Counter(
            "chatscribe_jobs", "Finished transcriptions by outcome", ["platform", "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "chatscribe_job_latency_seconds", "From acceptance to result", ["platform"],
            buckets=(0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300, 900), registry=self.registry,
        )
        self.audio_seconds = Histogram(
            "chatscribe_audio_seconds", "Length of transcribed media",
            buckets=(2, 5, 10, 20, 30, 60, 120, 300, 900, 3600), registry=self.registry,
        )
        self.realtime_factor = Gauge(
            "chatscribe_realtime_factor", "Recent processing seconds per audio second (lower is faster)",
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "chatscribe_cache_hits", "Answers served from the cache", ["kind"], registry=self.registry
        )
        self.errors = Counter(
            "chatscribe_errors", "Errors by type", ["type"], registry=self.registry
        )
        self.transcriptions = Counter(
            "chatscribe_transcriptions", "Engine runs (cache misses)", registry=self.registry
        )
        self.speaker_steps = Counter(
            "chatscribe_speaker_steps", "Speaker-label steps by outcome (channels, voices, one, unavailable, failed)",
            ["outcome"], registry=self.registry,
        )
        self.speaker_seconds = Histogram(
            "chatscribe_speaker_step_seconds", "Time the speaker step adds to a transcription (channel checks, "
            "voice vectors, clustering; channel by channel: the channels' transcription)",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=self.registry,
        )
