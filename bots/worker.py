"""`chatscribe worker`: the process of a transcription worker taking jobs from front ends through Redis.

Wiring only: settings, the model (loaded once), signals and the process's end. The worker's steps (take
a job, run it, save the outcome, acknowledge) are core/scaleout/worker.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

from chatscribe.core import Metrics, Settings
from chatscribe.core.jobs import LocalRunner, default_slots
from chatscribe.core.scaleout.worker import Worker

from .engine_loader import load_engine

log = logging.getLogger("chatscribe.worker")


def build_runner(settings: Settings) -> tuple[LocalRunner, int]:
    """The one model of this process, and how many jobs it holds at once. Slow: run it off the loop.

    Holding slots x batch size lets short notes waiting together go through the engine as one batch
    (core/engines/batching.py); the runner's fair scheduler orders what this worker holds.
    """
    engine = load_engine(settings)
    slots = settings.workers or default_slots(engine)
    log.info("model %s ready on %s (%s)", settings.model, engine.device.device, engine.device.compute_type)
    runner = LocalRunner(engine, slots=slots, max_duration_s=settings.max_duration_s, metrics=Metrics(),
                         batch_window_s=settings.batch_window_ms / 1000,
                         pack_across_conversations=settings.pack_across_conversations,
                         speakers_auto_min_s=settings.speakers_auto_min_s)
    return runner, slots * runner.scheduler.max_batch


async def run_worker(settings: Settings) -> int:
    if not settings.broker_url.get_secret_value():
        log.error("CHATSCRIBE_BROKER_URL is not set: a worker takes jobs from Redis, e.g. redis://localhost:6379/0")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    load = asyncio.ensure_future(asyncio.to_thread(build_runner, settings))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not load.done():
        load.cancel()
        return 0
    runner, slots = load.result()
    await Worker(settings, runner, slots=slots).serve(stop)
    log.info("worker stopped")
    if any(t.name.startswith("chatscribe-") and t.is_alive() for t in threading.enumerate()):
        # A transcription outlived the grace: the model's thread cannot be interrupted, and letting the
        # interpreter finalize under it aborts the process. Its job is still pending for another worker.
        logging.shutdown()
        os._exit(0)
    return 0
