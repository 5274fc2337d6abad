"""Accepted work survives the process: `chatscribe run slack` is SIGKILLed mid-job and after transcribing,
SIGTERMed with work running and waiting, and restarted on the same data dir. Every shared recording is
answered, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from chatscribe.core.jobs.crashes import CRASH_LIMIT
from chatscribe.core.media import decode_audio
from tests.audio_tools import to_wav
from tests.e2e.conftest import CHANNEL, SECRET, UNFINISHED, SlackProcess
from tests.fakes.slack_api import FakeSlack, text_of
from tests.wer import wer

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
SHUTDOWN_BOUND_S = 15
"""The issue's bound on how long SIGTERM may take (default CHATSCRIBE_SHUTDOWN_GRACE_S=10, then disconnect)."""


def carries(reference: str) -> Callable[[str], bool]:
    """Whether a message text is the transcript of `reference` (its first words, for long recordings)."""
    words = len(reference.split())
    return lambda text: wer(reference, " ".join(text.split()[:words])) < 0.35


def answers(chatscribe: SlackProcess, message: dict[str, Any], reference: str) -> list[str]:
    """The transcripts Slack accepted into the message's thread (status messages are not answers, even while
    they show the text decoded so far)."""
    return [text for text in chatscribe.sent(message) if carries(reference)(text) and not text.startswith(STATUS)]


STATUS = ("Transcribing", "Waiting to transcribe")
"""How a status message begins (core/sentences.py progress)."""


@pytest.fixture
def multilingual(references: dict[str, dict[str, Any]]) -> str:
    """The English half: tiny.en is English-only, what it makes of the German half is not checked."""
    return str(references["multilingual.mp3"]["text_en"])


@pytest.fixture
def meeting(audio: Callable[[str], bytes]) -> bytes:
    """Six minutes of speech: on a small CPU its transcription outlasts the 10 s shutdown grace (a fast one
    finishes it within the grace: both are allowed, the journal says which happened)."""
    minute = decode_audio(audio("multilingual.mp3"), max_duration_s=120).samples
    return to_wav(np.concatenate([minute] * 6))


async def test_kill_9_while_transcribing_then_restart_answers_once(
    chatscribe: SlackProcess, fake: FakeSlack, audio: Any, multilingual: str
) -> None:
    await chatscribe.start(SLACK_STATUS_AFTER_S="0")  # a "Transcribing…" status shows the engine started
    message = await chatscribe.share("multilingual.mp3", audio("multilingual.mp3"), mimetype="audio/mpeg")
    await chatscribe.until(lambda: any(t.startswith("Transcribing") for t in chatscribe.sent(message)),
                           "the one-minute recording to be transcribing")
    await chatscribe.kill()
    (job_id,) = chatscribe.journal()
    assert chatscribe.journal()[job_id] == "running"  # died mid-job, nothing answered
    assert answers(chatscribe, message, multilingual) == []

    await chatscribe.start()
    await chatscribe.until(lambda: chatscribe.journal()[job_id] == "delivered", "the resumed job to be delivered")
    assert len(answers(chatscribe, message, multilingual)) == 1
    # the status message of the first run became the answer: nothing stale is left in the thread (tiny.en
    # cannot transcribe the German half, so a second message may say that a part could not be transcribed)
    left = [text_of(m) for m in fake.history[CHANNEL] if m.get("thread_ts") == message["ts"] and m.get("bot_id")]
    assert carries(multilingual)(left[0])
    assert not [text for text in left if text.startswith(("Transcribing", "Waiting"))]
    assert [text for text in left[1:] if not text.startswith("A part of the recording could not be")] == []
    assert len(fake.downloads) == 2  # fetched again through the journaled Slack reference
    assert all(authorized for _, authorized in fake.downloads)
    assert list(chatscribe.journal()) == [job_id]
    # The logs follow the job across the restart by the id it was accepted under.
    assert any("accepted" in r["message"] for r in chatscribe.log_records(1) if r.get("job_id") == job_id)
    after = [r["message"] for r in chatscribe.log_records(2) if r.get("job_id") == job_id]
    assert "resumed" in after[0]
    assert "delivered" in after[-1]


async def test_a_file_that_keeps_killing_the_process_is_set_aside_and_the_others_answered(
    chatscribe: SlackProcess, audio: Any, multilingual: str
) -> None:
    """A decoder crash on a hostile file, or the OOM killer, takes the whole process down, and the journal
    would run that file again at every start. Here the process is SIGKILLed whenever the one-minute
    recording is being read or transcribed: after CRASH_LIMIT deaths it is answered with an explanation
    instead of being tried again, and the recording waiting behind it is transcribed as usual."""
    await chatscribe.start(SLACK_STATUS_AFTER_S="0")
    poison = await chatscribe.share("multilingual.mp3", audio("multilingual.mp3"), mimetype="audio/mpeg")
    (job_id,) = await chatscribe.until(chatscribe.journal, "the recording to be journaled")
    def in_the_engine() -> bool:
        return job_id in chatscribe.media_in_hand()

    await chatscribe.until(in_the_engine, "the recording to be read or transcribed")
    # Shared while the only slot is busy: it waits in the queue, its media never in hand when the process dies.
    waiting = await chatscribe.share("jfk.flac", audio("jfk.flac"), mimetype="audio/flac")
    await chatscribe.until(lambda: any(t.startswith("Waiting") for t in chatscribe.sent(waiting)),
                           "the second recording to wait in the queue")
    deaths = 0  # with the recording's media in hand: the deaths the journal counts against it
    for _ in range(4 * CRASH_LIMIT):
        await chatscribe.until(in_the_engine, "the recording to be read or transcribed")
        await chatscribe.kill()
        # The probe's mark lasts milliseconds: it may be gone by the time the signal lands, and a death
        # without it is not the recording's. A killed process cannot clear the mark, so the journal says.
        deaths += job_id in chatscribe.media_in_hand()
        await chatscribe.start()
        if deaths == CRASH_LIMIT:
            break
    assert deaths == CRASH_LIMIT, "the process was never killed with the recording in hand often enough"
    await chatscribe.until(lambda: set(chatscribe.journal().values()) == {"delivered"}, "both answers")
    assert len(answers(chatscribe, waiting, JFK)) == 1
    assert answers(chatscribe, poison, multilingual) == []
    assert [t for t in chatscribe.sent(poison) if "set it aside" in t]
    set_aside = [r for r in chatscribe.log_records(chatscribe.runs) if r.get("job_id") == job_id]
    assert any("set aside" in r["message"] for r in set_aside)
    assert chatscribe.process is not None
    assert chatscribe.process.returncode is None  # the bot is up and stays up


async def test_crash_after_transcribing_before_sending_delivers_once_after_restart(
    chatscribe: SlackProcess, fake: FakeSlack, audio: Any
) -> None:
    await chatscribe.start()
    # Slack rate-limits the answer for five minutes: the process dies while it waits to send.
    fake.rate_limit_next("chat.postMessage", retry_after_s=300)
    message = await chatscribe.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    await chatscribe.until(lambda: fake.calls_to("chat.postMessage"), "the answer to be sent (and refused)")
    await chatscribe.until(lambda: "transcribed" in chatscribe.journal().values(), "the journal to say transcribed")
    await chatscribe.kill()
    (job_id,) = chatscribe.journal()
    assert chatscribe.journal()[job_id] == "transcribed"
    assert [call.error for call in fake.calls_to("chat.postMessage")] == ["ratelimited"]
    assert fake.bot_messages(CHANNEL, message["ts"]) == []

    await chatscribe.start()
    await chatscribe.until(lambda: chatscribe.journal()[job_id] == "delivered", "the transcript to be delivered")
    assert len(answers(chatscribe, message, JFK)) == 1
    (reply,) = fake.bot_messages(CHANNEL, message["ts"])
    assert carries(JFK)(text_of(reply))
    assert len(fake.downloads) == 1  # the journal kept the transcript: nothing downloaded or transcribed again


async def test_sigterm_exits_in_time_keeps_the_journal_and_the_restart_answers_the_rest(
    chatscribe: SlackProcess, fake: FakeSlack, audio: Any, multilingual: str, meeting: bytes
) -> None:
    await chatscribe.start(SLACK_STATUS_AFTER_S="0")
    long = await chatscribe.share("meeting.wav", meeting, mimetype="audio/wav")
    await chatscribe.until(lambda: any(t.startswith("Transcribing") for t in chatscribe.sent(long)),
                           "the six-minute recording to be transcribing")
    # Two short notes wait behind it (one transcription at a time): accepted, journaled, not started.
    short = [await chatscribe.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg"),
             await chatscribe.share("jfk.m4a", audio("jfk.m4a"), mimetype="audio/mp4")]
    await chatscribe.until(lambda: len(chatscribe.journal()) == 3, "all three to be journaled")

    code, took_s = await chatscribe.terminate()
    assert took_s < SHUTDOWN_BOUND_S
    assert code == 0
    journal = chatscribe.journal()
    assert len(journal) == 3
    assert set(journal.values()) <= UNFINISHED | {"delivered"}, journal
    left = [job for job, state in journal.items() if state != "delivered"]
    # The waiting notes stay in the journal for the next start; the running transcription finished within
    # the grace (then it was delivered) or was left for the next start too.
    assert len(left) >= 2
    assert not any("restarting" in text for m in (long, *short) for text in chatscribe.sent(m))

    await chatscribe.start(SLACK_STATUS_AFTER_S="3600")
    await chatscribe.until(lambda: set(chatscribe.journal().values()) == {"delivered"},
                           "every job to be delivered after the restart")
    assert len(answers(chatscribe, long, multilingual)) == 1
    for note in short:
        assert len(answers(chatscribe, note, JFK)) == 1
    assert not any("restarting" in text for m in (long, *short) for text in chatscribe.sent(m))


async def test_json_logs_follow_one_job_id_and_hold_no_secret(
    chatscribe: SlackProcess, fake: FakeSlack, audio: Any
) -> None:
    await chatscribe.start(CHATSCRIBE_LOG_LEVEL="DEBUG")
    message = await chatscribe.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    await chatscribe.until(lambda: set(chatscribe.journal().values()) == {"delivered"}, "the answer")
    code, _ = await chatscribe.terminate()
    assert code == 0
    assert len(answers(chatscribe, message, JFK)) == 1

    (job_id,) = chatscribe.journal()
    records = chatscribe.log_records(1)  # every stderr line is a JSON record
    about_job = [r["message"] for r in records if r.get("job_id") == job_id]
    assert "accepted" in about_job[0]
    assert "delivered" in about_job[-1]
    assert {r["job_id"] for r in records if "job_id" in r} == {job_id}
    output = chatscribe.output_text()
    assert fake.token not in output
    assert SECRET not in output


async def test_killed_right_after_slack_accepted_the_answer_sends_it_once(
    chatscribe: SlackProcess, fake: FakeSlack, audio: Any
) -> None:
    """SIGKILL lands the moment Slack has accepted the answer, before the process has read Slack's reply and
    recorded it: the restarted process must not post the transcript a second time."""
    await chatscribe.start()
    message = await chatscribe.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    await fake.wait_for(lambda: fake.bot_messages(CHANNEL, message["ts"]), timeout=120)
    await chatscribe.kill()  # no await before the signal: the process is still reading the reply
    (job_id,) = chatscribe.journal()
    assert chatscribe.journal()[job_id] == "transcribed"  # the answer went out, the journal could not say so

    await chatscribe.start()
    await chatscribe.until(lambda: chatscribe.journal()[job_id] == "delivered", "the resumed delivery")
    assert len(fake.bot_messages(CHANNEL, message["ts"])) == 1
