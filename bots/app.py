"""`chatscribe run`: one event loop owning the HTTP server, the model, the service and every bot.

Start order: HTTP server (probes answer at once, /readyz says "model loading", or "converting model"
while a fine-tuned checkpoint is converted once) -> engine -> bots ->
resume journaled jobs. On SIGTERM/SIGINT: stop taking work, let running transcriptions finish within
the grace, stop the bots, stop the server; what is left stays in the journal for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading

from chatscribe.core import ChatscribeError, ConfigError, Settings, TranscriptionService

from .base import Bot
from .engine_loader import load_engine
from .http import HttpServer, create_app
from .http_state import STATE
from .platforms import configured

log = logging.getLogger("chatscribe")
BOT_STOP_S = 3.0


async def run(settings: Settings, requested: list[str]) -> int:
    code = await _serve(settings, requested)
    _exit_if_work_abandoned(code)
    return code


async def _serve(settings: Settings, requested: list[str]) -> int:
    platforms, problems = configured(requested)
    for problem in problems:
        log.error("%s", problem)
    if not platforms:
        log.warning(
            "no chat platform is configured: set TELEGRAM_BOT_TOKEN, DISCORD_BOT_TOKEN, or SLACK_BOT_TOKEN and "
            "SLACK_SIGNING_SECRET (see .env.example); serving the HTTP API and health endpoints only"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    service = TranscriptionService(settings=settings)
    bots: list[Bot] = [platform.build(platform_settings, service) for platform, platform_settings in platforms]
    app = create_app(service=service, settings=settings, bots=bots)
    server = HttpServer(app, settings.http_host, settings.http_port)
    await server.start()
    log.info("HTTP server on http://%s:%s", settings.http_host, server.port)
    started: list[Bot] = []
    workers = None
    try:
        if settings.broker_url.get_secret_value():
            workers = _attach_workers(service, settings)
        else:
            state = app[STATE]

            def stage(what: str) -> None:
                state.loading = what

            engine = await _until_stopped(asyncio.to_thread(load_engine, settings, stage=stage), stop)
            if engine is None:
                return 0
            service.set_engine(engine)
            log.info("model %s ready on %s (%s)", settings.model, engine.device.device, engine.device.compute_type)
        for bot in bots:
            await bot.start()
            started.append(bot)
            log.info("%s connected", bot.platform)
            resumed = await service.resume(bot.platform)
            if resumed:
                log.info("%s: resuming %d unfinished job(s) from the journal", bot.platform, resumed)
        await stop.wait()
        log.info("stopping: finishing running transcriptions for up to %.0f s", settings.shutdown_grace_s)
        return 0
    except ChatscribeError as exc:
        log.error("%s", exc.user_message)
        return 2
    finally:
        await service.aclose()
        if workers is not None:
            await workers.aclose()
        # The grace went to the running transcriptions; disconnecting gets what is left of 15 s.
        if started:
            await asyncio.wait([asyncio.ensure_future(bot.stop()) for bot in started], timeout=BOT_STOP_S)
        await server.stop()


def _exit_if_work_abandoned(code: int) -> None:
    """Leave at once when a transcription cut off at the end of the grace is still running.

    Its daemon thread (core/jobs/threads.py) is inside the engine's native code: finalizing the interpreter
    under it aborts the process ("terminate called without an active exception", SIGABRT). Everything
    worth keeping is closed by now (journal, cache, bots, HTTP server); the journal resumes the job.
    """
    abandoned = [t for t in threading.enumerate() if t.daemon and t.is_alive() and t.name.startswith("chatscribe-")]
    if not abandoned:
        return
    log.info("stopped with %d transcription(s) cut off; the next start runs them again", len(abandoned))
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    os._exit(code)


def _attach_workers(service: TranscriptionService, settings: Settings):  # type: ignore[no-untyped-def]
    """CHATSCRIBE_BROKER_URL is set: `chatscribe worker` processes transcribe, this process receives and answers."""
    try:
        from chatscribe.core.scaleout.runner import attach
    except ImportError as exc:
        raise ConfigError("CHATSCRIBE_BROKER_URL is set but the scale-out packages are missing: "
                          "pip install 'chatscribe[scaleout]'") from exc
    runner = attach(service, settings)
    log.info("transcription by `chatscribe worker` processes through %s", runner.where)
    return runner


async def _until_stopped(work, stop: asyncio.Event):  # type: ignore[no-untyped-def]
    """Await `work` unless a stop signal comes first (loading a large model can take minutes)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()
    return None
