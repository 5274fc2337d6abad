"""200 short voice notes from 20 Slack channels, with `chatscribe run slack` SIGKILLed twice during them.

    python -m bench.bench_kill_burst [--notes 200] [--chats 20] [--seconds 3] [--quick] [--no-write]

The real process on the real tiny.en model answers a fake Slack on 127.0.0.1 (tests/e2e). Half the notes
are shared, the process is killed once a fifth of all answers have reached Slack, restarted on the same
data dir, the other half shared while it resumes, killed again at 55 % of the answers, restarted, and
left to finish (tests/e2e/kill_burst.py). Each note's thread is then read back: exactly one answer per
note, none lost, none twice, none set aside. Writes the `kill-burst` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from bench.report import AUDIO_DIR, format_machine, machine_info, mark, require_audio, table, write_section
from tests.e2e import kill_burst
from tests.e2e.conftest import SlackProcess
from tests.fakes.slack_api import FakeSlack


async def _measure(notes: int, chats: int, seconds: float) -> kill_burst.BurstResult:
    fake = FakeSlack()
    await fake.start()
    workdir = Path(tempfile.mkdtemp(prefix="chatscribe-kill-burst-"))
    deployment = SlackProcess(fake, workdir)
    try:
        return await kill_burst.run(deployment, lambda name: (AUDIO_DIR / name).read_bytes(), notes=notes,
                                    chats=chats, seconds=seconds)
    finally:
        await deployment.close()
        await fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _render(result: kill_burst.BurstResult, info: dict[str, str], seconds: float) -> str:
    passed = not (result.unanswered or result.duplicated or result.set_aside or result.wrong or result.misattributed)
    rows = [
        ["notes shared / channels", f"{result.notes} / {result.chats}"],
        ["answers in Slack at each SIGKILL", ", ".join(str(k) for k in result.kills)],
        ["notes being read or transcribed at each SIGKILL", ", ".join(str(len(e)) for e in result.in_hand_at_kills)],
        ["deaths counted against a note that was not being worked on", len(result.misattributed)],
        ["seconds from SIGKILL to ready again", ", ".join(f"{s:.1f}" for s in result.restarts_s)],
        ["notes without an answer", len(result.unanswered)],
        ["notes answered more than once", len(result.duplicated)],
        ["notes set aside", len(result.set_aside)],
        ["answers that are not the note's transcript", len(result.wrong)],
        ["wall time, shares to last answer", f"{result.seconds:.0f} s"],
    ]
    return "\n\n".join([
        "## A burst with two SIGKILLs (`chatscribe run slack`, `tiny.en`, CPU)",
        f"{result.notes} WAV notes of {seconds:g} s (the opening of `jfk.flac`, each with different bytes so the cache "
        f"answers none) shared from {result.chats} channels of a fake Slack on 127.0.0.1, in two waves; the "
        "process is SIGKILLed when a fifth and then 55 % of the answers have reached Slack and restarted on "
        "the same data dir each time. Target: every note answered exactly once, nothing set aside "
        f"{mark(passed)}.",
        format_machine(info),
        table(["", "measured"], rows),
        "Reproduce: `.venv/bin/python -m bench.bench_kill_burst`.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per note")
    parser.add_argument("--quick", action="store_true", help="40 notes from 8 channels: checks the script")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.notes, args.chats = 40, 8
    require_audio()
    info = machine_info()
    result = asyncio.run(_measure(args.notes, args.chats, args.seconds))
    markdown = _render(result, info, args.seconds)
    print(markdown)
    if not args.no_write:
        write_section("kill-burst", markdown)
    failed = result.unanswered or result.duplicated or result.set_aside or result.wrong or result.misattributed
    if failed:
        print(f"unanswered {result.unanswered}\nduplicated {result.duplicated}\nset aside {result.set_aside}\n"
              f"wrong {result.wrong}\nmisattributed {result.misattributed}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
