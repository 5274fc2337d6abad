"""`chatscribe transcribe FILE...`: local files through the same service the bots use."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from pathlib import Path

from tqdm import tqdm

from chatscribe.core import (
    ChatscribeError,
    MediaRequest,
    Settings,
    TranscribeOptions,
    Transcript,
    TranscriptionService,
    gap_note,
    render,
    resolve_language,
)
from chatscribe.core.jobs import ProgressUpdate

from .engine_loader import load_engine

log = logging.getLogger(__name__)

LONG_FILE_BYTES = 2_000_000
"""Files past this size get a progress bar (about two minutes of compressed speech)."""


async def transcribe_files(
    settings: Settings, files: list[Path], *, language: str | None, task: str, fmt: str,
    output_dir: Path | None, vocabulary: str | None, timestamps: bool = False, speakers: str | None = None,
    min_speakers: int | None = None, max_speakers: int | None = None,
) -> int:
    # Before the model loads: a language Whisper does not know, or one outside CHATSCRIBE_LANGUAGES, or
    # speaker counts out of range, is one sentence (exit 2), as in the chats and the HTTP API.
    code = resolve_language(language, settings.expected_languages)
    counted = min_speakers is not None or max_speakers is not None
    options = TranscribeOptions(
        language=code, task=task, vocabulary=vocabulary,  # type: ignore[arg-type]
        word_timestamps=fmt == "json", expected_languages=() if code else settings.expected_languages,
        speakers=speakers or ("on" if counted else "off"),  # type: ignore[arg-type]
        min_speakers=min_speakers, max_speakers=max_speakers,
    )
    engine = await asyncio.to_thread(load_engine, settings)
    if output_dir:
        await asyncio.to_thread(output_dir.mkdir, parents=True, exist_ok=True)
    async with TranscriptionService(settings=settings, engine=engine) as service:
        # All files at once: the scheduler orders them and may batch the short ones. They are one person's
        # files, so one conversation (fairness between chats means nothing here), which lets packing put
        # short ones in one window (core/jobs/runner.py batch_key).
        run = f"run-{uuid.uuid4().hex[:12]}"
        results = await asyncio.gather(*(_one(service, path, options, run) for path in files))
    failures = 0
    for path, result in zip(files, results, strict=True):
        if not isinstance(result, ChatscribeError):
            try:
                _emit(path, result, fmt, output_dir, timestamps, many=len(files) > 1)
                continue
            except Exception as exc:  # e.g. the output file's place is taken by a folder, or the disk is full
                result = _unexpected(path, exc, doing="writing its transcript")
        failures += 1
        print(f"{path}: {result.user_message}", file=sys.stderr)
    return 1 if failures else 0


def _unexpected(path: Path, exc: Exception, *, doing: str) -> ChatscribeError:
    """A failure of one file that no ChatscribeError foresaw: one ERROR line (the traceback at DEBUG)
    and one sentence for this file, and the other files go on."""
    log.error("%s: %s failed: %s: %s", path, doing, type(exc).__name__, exc)
    log.debug("%s: %s failed", path, doing, exc_info=exc)
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return ChatscribeError(f"{doing} failed ({reason}); the other files went on")


async def _one(
    service: TranscriptionService, path: Path, options: TranscribeOptions, run: str
) -> Transcript | ChatscribeError:
    try:
        return await _transcribe_one(service, path, options, run)
    except ChatscribeError as exc:
        return exc
    except Exception as exc:
        return _unexpected(path, exc, doing="transcribing it")


async def _transcribe_one(
    service: TranscriptionService, path: Path, options: TranscribeOptions, run: str
) -> Transcript:
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except OSError as exc:
        raise ChatscribeError(f"cannot read it ({exc.strerror})") from exc

    async def fetch(limit: int) -> bytes:
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:  # a folder, or a file that went away or lost its permission since stat()
            raise ChatscribeError(f"cannot read it ({exc.strerror})") from exc

    request = MediaRequest(platform="cli", chat_id=run, user_id="cli", fetch=fetch,
                           size_bytes=size, file_name=path.name)
    bar = tqdm(total=100, desc=path.name, unit="%", leave=False) if size > LONG_FILE_BYTES else None

    def progress(update: ProgressUpdate) -> None:
        if bar is not None and update.stage == "transcribing":
            bar.update(round(update.fraction * 100) - bar.n)

    try:
        return await service.transcribe(request, options, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def _emit(path: Path, transcript: Transcript, fmt: str, output_dir: Path | None, timestamps: bool,
          *, many: bool) -> None:
    body = render(transcript, fmt, timestamps=timestamps)
    gaps = gap_note(transcript)
    if not transcript.has_speech and not gaps:
        print(f"{path}: No speech detected.", file=sys.stderr)
    if gaps:
        print(f"{path}: {gaps}", file=sys.stderr)
    if transcript.speaker_note:
        print(f"{path}: {transcript.speaker_note}", file=sys.stderr)
    if transcript.truncated:
        print(f"{path}: the file ends early (cut short?); this is the speech that is there.", file=sys.stderr)
    if output_dir is not None:
        target = output_dir / f"{path.stem}.{fmt}"
        target.write_text(body + ("\n" if body and not body.endswith("\n") else ""), encoding="utf-8")
        print(f"{path} -> {target}", file=sys.stderr)
        return
    if many:
        print(f"==> {path} <==")
    if body:
        print(body)
