"""The `chatscribe` command: run, worker, transcribe, doctor, models."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chatscribe.core import FORMATS, SPEAKERS_MODES, ChatscribeError, Settings, load

from .logs import RedactSecrets, configure, secrets_of

PLATFORMS = ("telegram", "discord", "slack")


def main(argv: Sequence[str] | None = None) -> None:
    # Before anything is written: the data dir, the SQLite files and converted models are the service
    # user's alone (each store also creates its files private, whatever the umask).
    os.umask(0o077)
    args = _parser().parse_args(_bare_speakers(sys.argv[1:] if argv is None else argv))
    try:
        settings = load(Settings, **_overrides(args))
    except ChatscribeError as exc:
        print(exc.user_message, file=sys.stderr)
        raise SystemExit(2) from None
    redact = configure(settings.log_level, settings.log_format if args.command in ("run", "worker") else "text")
    # `transcribe` at a terminal uses no platform: it skips importing their libraries just to read tokens.
    register_secrets(redact, settings, platforms=args.command not in ("transcribe", "models"))
    try:
        code = asyncio.run(_dispatch(args, settings))
    except ChatscribeError as exc:
        print(exc.user_message, file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "transcribe":
        from .transcribe_cmd import transcribe_files

        return await transcribe_files(
            settings, [Path(p) for p in args.files], language=args.language, task=args.task, fmt=args.format,
            output_dir=Path(args.output_dir) if args.output_dir else None, vocabulary=args.vocabulary,
            timestamps=args.timestamps, speakers=args.speakers, min_speakers=args.min_speakers,
            max_speakers=args.max_speakers,
        )
    if args.command == "doctor":
        from .doctor import doctor

        return await doctor(settings)
    if args.command == "models":
        from .models_cmd import list_models, remove_model

        return remove_model(settings, args.name) if args.models_command == "remove" else list_models(settings)
    if args.command == "worker":
        from .worker import run_worker

        return await run_worker(settings)
    from .app import run

    return await run(settings, args.platforms or [])


def register_secrets(redact: RedactSecrets, settings: Settings, *, platforms: bool) -> None:
    """Have the log redactor replace every configured secret: the core's (API keys, the broker URL and its
    password) and, where bots may run, each platform's tokens and secrets."""
    redact.add(*secrets_of(settings))
    if not platforms:
        return
    from .platforms import PLATFORMS

    for platform in PLATFORMS.values():
        try:
            redact.add(*secrets_of(platform.settings()))
        except (ChatscribeError, ImportError):  # its extra is not installed, or its settings are wrong:
            continue  # `run` names the problem; a bot that cannot be built logs none of its secrets


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {}
    if getattr(args, "model", None):
        overrides["model"] = args.model
    if args.command == "transcribe":
        overrides["user_rate"] = ""  # a person at their own terminal is not rate limited
        overrides["queue_max"] = max(200, len(args.files) + 1)
    return overrides


def _bare_speakers(argv: Sequence[str]) -> list[str]:
    """`--speakers FILE` is `--speakers on FILE`: argparse would take FILE for the flag's optional value."""
    words = list(argv)
    for index, word in enumerate(words):
        if word == "--speakers" and (index + 1 == len(words) or words[index + 1] not in SPEAKERS_MODES):
            words[index] = "--speakers=on"
    return words


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatscribe", description="Transcribe voice notes, audio and video from chats and files."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="serve the chat platforms whose credentials are set, and the HTTP server")
    run.add_argument("platforms", nargs="*", choices=[[], *PLATFORMS], metavar="PLATFORM",
                     help=f"any of {', '.join(PLATFORMS)} (default: every configured one)")

    transcribe = commands.add_parser("transcribe", help="transcribe local audio or video files")
    transcribe.add_argument("files", nargs="+", metavar="FILE")
    transcribe.add_argument("--language", help="a code (de) or English name (German); default: detect, "
                            "among CHATSCRIBE_LANGUAGES when set")
    transcribe.add_argument("--task", choices=["transcribe", "translate"], default="transcribe",
                            help="translate gives English whatever was spoken")
    transcribe.add_argument("--format", choices=FORMATS, default="txt")
    transcribe.add_argument("--model", help="model name or folder (default: CHATSCRIBE_MODEL)")
    transcribe.add_argument("--output-dir", help="write FILE.<format> there instead of printing")
    transcribe.add_argument("--vocabulary", help='names and terms to expect, e.g. "Kubernetes, ComfyUI"')
    transcribe.add_argument("--timestamps", action="store_true", help="[mm:ss] marks in txt output")
    transcribe.add_argument("--speakers", nargs="?", const="on", choices=SPEAKERS_MODES, default=None,
                            help="label who says what (on; auto: only recordings of at least "
                            "CHATSCRIBE_SPEAKERS_AUTO_MIN_S); needs the speakers extra")
    transcribe.add_argument("--min-speakers", type=int, metavar="N", help="at least N voices (implies --speakers)")
    transcribe.add_argument("--max-speakers", type=int, metavar="N", help="at most N voices (implies --speakers)")

    worker = commands.add_parser("worker", help="transcribe jobs shared through Redis (CHATSCRIBE_BROKER_URL)")
    worker.add_argument("--model", help="model name or folder (default: CHATSCRIBE_MODEL; front ends must agree)")

    doctor = commands.add_parser("doctor", help="show the model, device, data dir, cache and platforms")
    doctor.add_argument("--model", help="check this model instead of CHATSCRIBE_MODEL")

    models = commands.add_parser("models", help="list the models in the data dir (bundled, converted, downloaded)")
    models_commands = models.add_subparsers(dest="models_command")
    remove = models_commands.add_parser("remove", help="delete one stored model to free its space")
    remove.add_argument("name", metavar="NAME", help="a name `chatscribe models` lists")
    return parser
