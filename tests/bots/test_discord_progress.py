"""Discord progress: one status reply per job, edited calmly, that becomes the first part of the answer.

The real discord.py client against the fake Discord on 127.0.0.1, with the real model (tiny.en).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from chatscribe.adapters import discord as adapter
from chatscribe.bots.discord_bot import DiscordBot, DiscordSettings
from chatscribe.core.errors import NoAudioTrack
from chatscribe.core.i18n import localize
from chatscribe.core.jobs.journal import Job, ProgressUpdate
from chatscribe.core.keys import content_hash, transcript_key
from chatscribe.core.media import MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from tests.fakes.discord_api import Call, FakeDiscord
from tests.fakes.receipts import MemoryReceipt
from tests.wer import wer

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
STATUS_START = ("Transcribing", "Waiting to transcribe")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def bot(fake: FakeDiscord, service: TranscriptionService) -> AsyncIterator[DiscordBot]:
    settings = DiscordSettings(_env_file=None, bot_token=fake.token, api_base_url=fake.base_url,  # type: ignore[call-arg]
                               status_after_s=0)
    bot = DiscordBot(service=service, settings=settings, guild_ready_timeout=0.05)
    await bot.start()
    yield bot
    await bot.stop()


def channel_messages(fake: FakeDiscord) -> str:
    return f"/channels/{fake.channel_id}/messages"


async def test_voice_message_gets_a_status_reply_that_becomes_the_transcript(
        fake: FakeDiscord, bot: DiscordBot, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    voice = await fake.user_message(
        attachments=[fake.attachment(audio("jfk_voice.ogg"), "voice-message.ogg", "audio/ogg", voice=True)],
        voice=True)

    (status,) = await fake.wait_calls("POST", channel_messages(fake))
    await service.wait_idle()

    assert status.body["content"].startswith(STATUS_START), status.body["content"]
    assert str(status.body["message_reference"]["message_id"]) == voice["id"]
    (answer,) = fake.bot_messages()
    assert wer(JFK, answer["content"]) < 0.2
    assert answer["edited_timestamp"], "the status reply was edited into the transcript, not left behind"
    edits = fake.find("PATCH", f"{channel_messages(fake)}/{answer['id']}")
    assert edits
    assert wer(JFK, edits[-1].body["content"]) < 0.2
    assert len(fake.find("POST", channel_messages(fake))) == 1, "one message in the channel, no flood"


async def test_slash_command_shows_progress_in_its_deferred_response(
        fake: FakeDiscord, bot: DiscordBot, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    attachment = fake.attachment(audio("jfk_video_note.mp4"), "note.mp4", "video/mp4")
    interaction = await fake.slash_command(
        "transcribe", [{"name": "file", "type": 11, "value": attachment["id"]}], attachments=[attachment])
    original = f"/webhooks/{fake.application_id}/{interaction['token']}/messages/@original"

    (status,) = await fake.wait_calls("PATCH", original)
    await service.wait_idle()

    assert status.body["content"].startswith(STATUS_START), status.body["content"]
    edits = fake.find("PATCH", original)
    assert len(edits) >= 2, "the deferred response showed the status, then the transcript"
    assert wer(JFK, edits[-1].body["content"]) < 0.2
    assert edits[-1].body["allowed_mentions"] == {"parse": []}
    assert not fake.find("POST", f"/webhooks/{fake.application_id}/{interaction['token']}"), \
        "the answer is the response itself, not a follow-up"
    assert wer(JFK, fake.originals[str(interaction["token"])]["content"]) < 0.2


async def test_status_edits_keep_discords_rate_in_a_busy_channel(fake: FakeDiscord, bot: DiscordBot) -> None:
    """Three jobs report progress 20 times a second for 5 s; the channel sees an edit at most every ~2 s and
    never more than 5 in 5 s, the three final answers (edits too) included."""
    jobs = [await _job(fake, f"j{n}") for n in range(3)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    step = 0
    while loop.time() < deadline:
        step += 1
        for job in jobs:
            await bot._delivery.progress(job, ProgressUpdate("transcribing", fraction=min(0.99, step / 100)))
        await asyncio.sleep(0.05)  # the runner's report rate, not a synchronisation
    for job in jobs:
        await bot._delivery.deliver(job, NoAudioTrack(), MemoryReceipt())

    posts = fake.find("POST", channel_messages(fake))
    assert len([p for p in posts if p.body.get("content", "").startswith("Transcribing")]) == 3
    edits = [c for c in fake.calls if c.method == "PATCH" and c.path.startswith(channel_messages(fake) + "/")]
    status_edits = [c for c in edits if c.body["content"].startswith("Transcribing")]
    assert len(status_edits) >= 2, "progress was shown"
    gaps = [b.at - a.at for a, b in zip(status_edits, status_edits[1:], strict=False)]
    assert min(gaps) >= 1.9, f"status edits {gaps} s apart in one channel"
    assert _most_in_window(edits, 5.0) <= 5
    answers = [m["content"] for m in fake.bot_messages()]
    assert answers == [NoAudioTrack().user_message] * 3, "each status became its answer"


async def _job(fake: FakeDiscord, job_id: str, *, replies: str | None = None) -> Job:
    command = await fake.user_message("a recording was here")  # what the answer replies to
    target = adapter.Target(channel_id=fake.channel_id, guild_id=fake.guild_id, reply_to=command["id"],
                            replies=replies)
    reference = adapter.to_reference(target, adapter.Source("1", "http://127.0.0.1:1/none"))

    async def never(max_bytes: int) -> bytes:
        raise AssertionError("not fetched")

    request = MediaRequest(platform="discord", chat_id=fake.channel_id, user_id="1", fetch=never,
                           reference=reference, replies=replies)
    return Job(id=job_id, request=request, options=TranscribeOptions())


def _most_in_window(calls: list[Call], window_s: float) -> int:
    times = sorted(c.at for c in calls)
    return max((sum(1 for t in times if start <= t < start + window_s) for start in times), default=0)


async def test_a_long_voice_message_shows_its_words_in_the_status_while_it_is_transcribed(
        fake: FakeDiscord, bot: DiscordBot, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    note = audio("multilingual_voice.ogg")  # a minute: two windows, the first one's words arrive early
    await fake.user_message(
        attachments=[fake.attachment(note, "voice-message.ogg", "audio/ogg", voice=True)], voice=True)
    (status,) = await fake.wait_calls("POST", channel_messages(fake))
    await service.wait_idle()

    answer = fake.bot_messages()
    edits = fake.find("PATCH", f"{channel_messages(fake)}/{answer[0]['id']}")
    before_answer = [status, *edits[:-1]]
    live = [c.body["content"] for c in before_answer if "\n\n" in c.body["content"]]
    assert live, "a status before the answer showed words already decoded"
    assert all(text.startswith("Transcribing") for text in live)
    first_words = live[0].split("\n\n", 1)[1].split()[:3]
    assert len(first_words) == 3
    assert answer[0]["content"].split()[:3] == first_words, "the words shown begin the transcript"
    gaps = [b.at - a.at for a, b in zip(before_answer, before_answer[1:], strict=False)]
    assert all(gap >= 1.9 for gap in gaps), f"status edits {gaps} s apart"
    assert _most_in_window([*before_answer, edits[-1]], 5.0) <= 5

    cached = service.cache.get(transcript_key(service.runner.model_id, TranscribeOptions(), content_hash(note)))
    assert cached is not None
    unchanged = adapter.render_answer(cached, max_parts=service.settings.max_parts)
    assert [m["content"] for m in answer] == [part.content for part in unchanged], \
        "the answer is what it would have been without live text"


def test_a_live_status_full_of_markdown_still_fits_discords_limit_once_escaped() -> None:
    from discord.utils import escape_markdown

    from chatscribe.bots.discord_delivery import LIMITS
    from chatscribe.core.delivery.courier import fit_tail

    spoken = " ".join(["*really* _that_ ~~much~~"] * 400)  # a transcript with markdown characters in it
    shown = fit_tail(spoken, LIMITS.message_units, LIMITS.measure)
    assert shown.endswith("~~much~~")
    assert len(escape_markdown(shown)) <= LIMITS.message_units


async def test_a_status_whose_id_was_never_noted_becomes_the_answer_after_a_restart(
        fake: FakeDiscord, bot: DiscordBot) -> None:
    """The process died between posting the status and noting its id: the next one finds the status among
    the channel's messages and edits it into the answer, instead of leaving it beside a new message."""
    first = await _job(fake, "j1")
    await bot._delivery.progress(first, ProgressUpdate("transcribing", fraction=0.3))
    restarted = Job(id="j1", request=first.request, options=first.options, notes={"status": "posting"})
    bot._delivery._status.clear()  # type: ignore[attr-defined]  # what a new process knows: the journal only
    await bot._delivery.deliver(restarted, NoAudioTrack(), MemoryReceipt())
    assert [m["content"] for m in fake.bot_messages()] == [NoAudioTrack().user_message]


async def test_a_german_status_whose_id_was_never_noted_becomes_the_answer_after_a_restart(
        fake: FakeDiscord, bot: DiscordBot) -> None:
    """The same in a channel whose replies are German: the status found again is the German one."""
    first = await _job(fake, "j1", replies="de")
    await bot._delivery.progress(first, ProgressUpdate("transcribing", fraction=0.3))
    (status,) = fake.bot_messages()
    assert status["content"].startswith("Transkribiere"), status["content"]
    restarted = Job(id="j1", request=first.request, options=first.options, notes={"status": "posting"})
    bot._delivery._status.clear()  # type: ignore[attr-defined]  # what a new process knows: the journal only
    await bot._delivery.deliver(restarted, NoAudioTrack(), MemoryReceipt())

    assert fake.find("GET", channel_messages(fake)), "the channel's latest messages were read"
    assert len(fake.find("POST", channel_messages(fake))) == 1, "no second status or answer beside it"
    (answer,) = fake.bot_messages()
    assert answer["id"] == status["id"]
    assert answer["content"] == localize(NoAudioTrack().user_message, "de")
    assert answer["content"] != NoAudioTrack().user_message
