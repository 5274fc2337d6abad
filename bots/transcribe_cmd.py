"""`chatscribe transcribe FILE...`: local files through the same service the bots use."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tqdm import tqdm

from chatscribe.core.config import Settings
from chatscribe.core.errors import ChatscribeError
from chatscribe.core.jobs.journal import ProgressUpdate
from chatscribe.core.media import MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript, gap_note, render

from .engine_loader import load_engine

LONG_FILE_BYTES = 2_000_000
"""Files past this size get a progress bar (about two minutes of compressed speech)."""


async def transcribe_files(
    settings: Settings, files: list[Path], *, language: str | None, task: str, fmt: str,
    output_dir: Path | None, vocabulary: str | None, timestamps: bool = False,
) -> int:
    options = TranscribeOptions(
        language=language, task=task, vocabulary=vocabulary,  # type: ignore[arg-type]
        word_timestamps=fmt == "json", expected_languages=settings.expected_languages,
    )
    engine = await asyncio.to_thread(load_engine, settings)
    if output_dir:
        await asyncio.to_thread(output_dir.mkdir, parents=True, exist_ok=True)
    async with TranscriptionService(settings=settings, engine=engine) as service:
        # All files at once: the scheduler orders them and may batch the short ones.
        results = await asyncio.gather(*(_one(service, path, options) for path in files))
    failures = 0
    for path, result in zip(files, results, strict=True):
        if isinstance(result, ChatscribeError):
            failures += 1
            print(f"{path}: {result.user_message}", file=sys.stderr)
            continue
        _emit(path, result, fmt, output_dir, timestamps, many=len(files) > 1)
    return 1 if failures else 0


async def _one(service: TranscriptionService, path: Path, options: TranscribeOptions) -> Transcript | ChatscribeError:
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except OSError as exc:
        return ChatscribeError(f"cannot read it ({exc.strerror})")

    async def fetch(limit: int) -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    request = MediaRequest(platform="cli", chat_id=str(path), user_id="cli", fetch=fetch,
                           size_bytes=size, file_name=path.name)
    bar = tqdm(total=100, desc=path.name, unit="%", leave=False) if size > LONG_FILE_BYTES else None

    def progress(update: ProgressUpdate) -> None:
        if bar is not None and update.stage == "transcribing":
            bar.update(round(update.fraction * 100) - bar.n)

    try:
        return await service.transcribe(request, options, progress=progress)
    except ChatscribeError as exc:
        return exc
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
