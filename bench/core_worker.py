"""One side of the core benchmark, in its own process so that its peak memory is its own.

`python -m bench.core_worker SIDE MODEL_PATH` loads the model, warms it up, then answers one JSON
command per stdin line with one JSON line on stdout (logs go to stderr). Sides:

- `plain`: `WhisperModel(path, device="cpu", compute_type="int8")` and `model.transcribe(file)` with
  faster-whisper's defaults (beam 5, no VAD), iterating the segments;
- `plain-vad`: the same with `vad_filter=True`;
- `service`: chatscribe's TranscriptionService as the CLI drives it, with its default VAD on;
- `service-novad`: the same with CHATSCRIBE_VAD=false (same decoding settings as `plain`).

Every service run gets a fresh data dir, so its cache never answers a speed run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIDES = ("plain", "service-novad", "plain-vad", "service")
WARM_UP = "jfk.flac"


def main() -> None:
    side, model_path, audio_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    started = time.perf_counter()
    handler = _PlainSide(model_path, vad=side == "plain-vad") if side.startswith("plain") else \
        _ServiceSide(model_path, vad=side == "service")
    load_s = time.perf_counter() - started
    handler.run(str(audio_dir / WARM_UP))  # first inference allocates: keep it out of the timings
    _reply({"ready": True, "load_s": load_s, "rss_mb": _current_rss_mb()})
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            handler.close()
            _reply({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            return
        _reply(getattr(handler, op)(**command))


def _reply(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _cpu_s() -> float:
    """CPU seconds of this process, all threads: less disturbed by a busy machine than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1024**2


class _PlainSide:
    def __init__(self, model_path: str, *, vad: bool) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(model_path, device="cpu", compute_type="int8")
        self.vad = vad

    def run(self, path: str) -> dict[str, Any]:
        started, cpu = time.perf_counter(), _cpu_s()
        kwargs = {"vad_filter": True} if self.vad else {}  # otherwise faster-whisper's defaults, untouched
        segments, info = self.model.transcribe(path, **kwargs)
        text = "".join(segment.text for segment in segments)
        return {"wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu, "text": text.strip(),
                "language": info.language}

    def close(self) -> None:
        pass


class _ServiceSide:
    def __init__(self, model_path: str, *, vad: bool) -> None:
        from chatscribe.bots.engine_loader import load_engine

        self.root = Path(tempfile.mkdtemp(prefix="chatscribe-bench-"))
        self.model_path = model_path
        self.vad = vad
        self.loop = asyncio.new_event_loop()
        self.engine = load_engine(self._settings(self.root / "load"))
        self.runs = 0

    def _settings(self, data_dir: Path) -> Any:
        from chatscribe.core.config import Settings

        # The per-user rate limit is for people, not for a benchmark sending 50 repeats.
        return Settings(_env_file=None, data_dir=data_dir, model=self.model_path, device="cpu",  # type: ignore[call-arg]
                        compute_type="int8", vad=self.vad, user_rate="")

    def _service(self) -> Any:
        from chatscribe.core.service import TranscriptionService

        self.runs += 1
        return TranscriptionService(settings=self._settings(self.root / f"run{self.runs}"), engine=self.engine)

    def run(self, path: str) -> dict[str, Any]:
        return self.loop.run_until_complete(self._run(Path(path)))

    async def _run(self, path: Path) -> dict[str, Any]:
        async with self._service() as service:  # a fresh data dir: nothing cached
            started, cpu = time.perf_counter(), _cpu_s()
            transcript = await service.transcribe(_request(path))
            wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
        return {"wall_s": wall, "cpu_s": cpu, "text": transcript.text.strip(), "language": transcript.language,
                "has_speech": transcript.has_speech}

    def cache_hits(self, path: str, count: int) -> dict[str, Any]:
        return self.loop.run_until_complete(self._cache_hits(Path(path), count))

    async def _cache_hits(self, path: Path, count: int) -> dict[str, Any]:
        async with self._service() as service:
            await service.transcribe(_request(path))  # the miss that fills the cache
            content = await _timed(count, lambda i: service.transcribe(_request(path)))
            with_id = _request(path, file_id="bench-file")
            await service.transcribe(with_id)  # records the platform id as an alias of the content
            by_id = await _timed(count, lambda i: service.cached(with_id))
            journaled = await self._journaled_hits(service, path, count)
        return {"content": content, "platform_id": by_id, "journaled": journaled}

    async def _journaled_hits(self, service: Any, path: Path, count: int) -> list[float]:
        """submit() -> deliver() of a cached file: what a chat user waits for, journal writes included."""
        delivery = _TimingDelivery(path)
        service.register("bench", delivery)
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await service.submit(_request(path))
            await delivery.answered.wait()
            delivery.answered.clear()
            samples.append(time.perf_counter() - started)
        return samples

    def breakdown(self, path: str, count: int) -> dict[str, Any]:
        """Where the service spends time beyond the engine, per step, on one file (median of `count`)."""
        from chatscribe.core.media import decode_audio, probe_duration
        from chatscribe.core.options import TranscribeOptions
        from chatscribe.core.quality import screen

        data = Path(path).read_bytes()
        decoded = decode_audio(data, max_duration_s=3600)
        raw = self.engine.transcribe(decoded.samples, TranscribeOptions())
        from faster_whisper.audio import decode_audio as plain_decode

        steps: dict[str, Callable[[], object]] = {
            "faster-whisper's own decode (plain does this too)": lambda: plain_decode(path),
            "sha256 of the bytes": lambda: hashlib.sha256(data).hexdigest(),
            "probe duration (container)": lambda: probe_duration(data),
            "decode to 16 kHz (PyAV)": lambda: decode_audio(data, max_duration_s=3600),
            "quality pass (Silero VAD + checks)": lambda: screen(raw, decoded.samples),
        }
        result = {}
        for name, step in steps.items():
            samples = []
            for _ in range(count):
                started = time.perf_counter()
                step()
                samples.append(time.perf_counter() - started)
            result[name] = sorted(samples)[len(samples) // 2]
        return result

    def close(self) -> None:
        self.loop.close()
        shutil.rmtree(self.root, ignore_errors=True)


async def _timed(count: int, call: Callable[[int], Any]) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


def _request(path: Path, *, file_id: str | None = None) -> Any:
    from chatscribe.core.media import MediaRequest

    async def fetch(limit: int) -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    # As the CLI builds it (bots/transcribe_cmd.py): the file is read inside the timed call.
    return MediaRequest(platform="bench", chat_id="bench", user_id="bench", fetch=fetch,
                        size_bytes=path.stat().st_size, file_name=path.name, platform_file_id=file_id,
                        reference={"file": str(path)})


class _TimingDelivery:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.answered = asyncio.Event()

    def fetcher(self, reference: Any) -> Any:
        return _request(Path(reference["file"])).fetch

    async def progress(self, job: Any, update: Any) -> None:
        pass

    async def deliver(self, job: Any, outcome: Any, receipt: Any) -> None:
        await receipt.part_sent()
        self.answered.set()


if __name__ == "__main__":
    main()
