"""Benchmarks against plain faster-whisper; each script writes its own section of docs/benchmarks.md."""
