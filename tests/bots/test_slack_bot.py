"""The Slack bot end to end in one process: signed requests to the real /slack/events endpoint of a running
aiohttp server, the real bolt app and slack_sdk client talking HTTP to a fake Slack on 127.0.0.1, and the
real tiny.en model on the shared audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from chatscribe.bots.slack_bot import SlackBot, SlackSettings
from chatscribe.bots.slack_files import MAX_REDIRECTS
from chatscribe.core.errors import ConfigError
from chatscribe.core.jobs.journal import Job
from chatscribe.core.keys import content_hash, transcript_key
from chatscribe.core.media import MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.transcript import Segment, Transcript
from tests.fakes.process import chatscribe_process
from tests.fakes.receipts import MemoryReceipt
from tests.fakes.slack_api import (
    FakeSlack,
    RecordingHost,
    command_body,
    command_payload,
    event_body,
    message_event,
    shortcut_body,
    signed_headers,
    text_of,
)
from tests.ports import free_port
from tests.wer import wer

ROOT = Path(__file__).resolve().parents[2]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0GENERAL"
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@dataclass
class Slack:
    fake: FakeSlack
    bot: SlackBot
    service: Any
    url: str
    http: aiohttp.ClientSession

    async def post(self, body: str, content_type: str, *, timestamp: int | None = None,
                   secret: str = SECRET, headers: dict[str, str] | None = None) -> tuple[int, str]:
        sent = {"Content-Type": content_type, **signed_headers(secret, body, timestamp=timestamp), **(headers or {})}
        async with self.http.post(f"{self.url}/slack/events", data=body.encode(), headers=sent) as response:
            return response.status, await response.text()

    async def event(self, event: dict[str, Any], *, event_id: str | None = None,
                    headers: dict[str, str] | None = None) -> int:
        status, _ = await self.post(event_body(event, event_id=event_id), "application/json", headers=headers)
        return status

    async def share(self, name: str, data: bytes, *, mimetype: str, channel: str = CHANNEL,
                    **file: Any) -> dict[str, Any]:
        """A person shares a file in a channel: Slack stores it and sends the message event."""
        info = self.fake.add_file(name, data, mimetype=mimetype, **file)
        message = self.fake.add_message(channel, files=[info])
        assert await self.event(message_event(channel, message)) == 200
        return message

    async def command(self, text: str, *, channel: str = CHANNEL, user: str = "UALICE") -> tuple[int, str, str]:
        response_url = self.fake.response_url()
        body = command_body(text, channel=channel, response_url=response_url, user=user)
        status, answer = await self.post(body, "application/x-www-form-urlencoded")
        return status, answer, response_url

    async def replies(self, message: dict[str, Any], count: int = 1, channel: str = CHANNEL) -> list[str]:
        """The bot's messages in the message's thread, as plain text, once `count` have arrived."""
        def answered() -> list[dict[str, Any]] | None:
            found = self.fake.bot_messages(channel, message["ts"])
            return found if len(found) >= count else None

        found = await self.fake.wait_for(answered)
        await self.service.wait_idle()
        return [text_of(m) for m in found]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


@contextlib.asynccontextmanager
async def running(fake: FakeSlack, service: Any, **settings: Any) -> AsyncIterator[Slack]:
    """A SlackBot on the service, its /slack/events route served by an aiohttp server on 127.0.0.1."""
    # Whether a "Transcribing…" status is posted depends on measured speed: tested on its own below.
    settings.setdefault("status_after_s", 3600)
    config = SlackSettings(_env_file=None, bot_token=fake.token, signing_secret=SECRET,  # type: ignore[call-arg]
                           api_url=fake.api_url, **settings)
    bot = SlackBot(settings=config, service=service)
    app = web.Application()
    app.add_routes(bot.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await bot.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Slack(fake, bot, service, f"http://127.0.0.1:{port}", http)
    finally:
        await bot.stop()
        await runner.cleanup()


@pytest.fixture
async def slack(fake: FakeSlack, service: Any) -> AsyncIterator[Slack]:
    async with running(fake, service) as harness:
        yield harness
        await service.wait_idle()


async def test_shared_voice_note_is_transcribed_in_its_thread(slack: Slack, audio: Any,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    message = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg", filetype="ogg")
    (reply,) = await slack.replies(message)
    assert wer(JFK, reply) < 0.3
    assert slack.fake.downloads
    assert all(authorized for _, authorized in slack.fake.downloads)
    assert slack.fake.token not in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("audio_file", "name", "mimetype", "subtype"),
    [("jfk.m4a", "audio_message.mp4", "audio/mp4", "slack_audio"),
     ("jfk_video_note.mp4", "Recording 2026-11-25.webm", "video/mp4", "slack_video")],
)
async def test_slack_clips_are_decided_by_content_not_name(slack: Slack, audio: Any, audio_file: str, name: str,
                                                           mimetype: str, subtype: str) -> None:
    message = await slack.share(name, audio(audio_file), mimetype=mimetype, filetype="mp4", subtype=subtype)
    (reply,) = await slack.replies(message)
    assert wer(JFK, reply) < 0.3


async def test_a_file_sent_as_its_id_alone_is_looked_up(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    info = fake.add_file("Audio Clip", audio("jfk.m4a"), mimetype="audio/mp4", subtype="slack_audio")
    message = fake.add_message(CHANNEL, files=[info])
    truncated = {"id": info["id"], "mode": "file_access", "file_access": "check_file_info", "user": "UALICE"}
    assert await slack.event(message_event(CHANNEL, {**message, "files": [truncated]})) == 200
    (reply,) = await slack.replies(message)
    assert wer(JFK, reply) < 0.3
    assert fake.calls_to("files.info")


async def test_transcribe_command_acks_before_the_work_and_picks_the_latest_clip(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    fake.add_message(CHANNEL, files=[fake.add_file("old.ogg", audio("silence_10s.ogg"), mimetype="audio/ogg")])
    clip = fake.add_message(CHANNEL, files=[fake.add_file("jfk.flac", audio("jfk.flac"), mimetype="audio/flac")])
    fake.add_message(CHANNEL, files=[fake.add_file("notes.pdf", b"%PDF-1.4", mimetype="application/pdf",
                                                   filetype="pdf")])
    fake.add_message(CHANNEL, text="did anyone listen to it?")
    fake.download_gate = asyncio.Event()  # the download cannot finish until the test lets it

    status, _, response_url = await slack.command("")
    assert status == 200  # answered while the file was still held back: the ack did not wait on the work
    await fake.wait_for(lambda: fake.downloads)
    fake.download_gate.set()
    (reply,) = await slack.replies(clip)
    assert wer(JFK, reply) < 0.3
    assert any("jfk.flac" in r.get("text", "") for r in fake.responses)


async def test_transcribe_command_with_a_permalink_answers_in_that_thread(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    parent = fake.add_message("C0OTHER", text="standup notes")
    info = fake.add_file("update.m4a", audio("jfk.m4a"), mimetype="audio/mp4")
    reply_with_file = fake.add_message("C0OTHER", files=[info], thread_ts=parent["ts"])
    link = fake.permalink("C0OTHER", reply_with_file["ts"], thread_ts=parent["ts"])

    status, _, _ = await slack.command(f"<{link}>")
    assert status == 200
    (reply,) = await slack.replies(parent, channel="C0OTHER")
    assert wer(JFK, reply) < 0.3


async def test_permalink_to_a_channel_the_bot_is_not_in_says_how_to_fix_it(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    message = fake.add_message("C0SECRET", files=[fake.add_file("a.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")])
    fake.outside.add("C0SECRET")
    status, _, _ = await slack.command(fake.permalink("C0SECRET", message["ts"]))
    assert status == 200
    (answer,) = await fake.wait_for(lambda: fake.responses)
    assert "invite me" in answer["text"]
    assert fake.downloads == []


@pytest.mark.parametrize("private", ["private ", ""])
async def test_a_link_into_a_conversation_the_caller_is_not_in_is_refused(slack: Slack, audio: Any,
                                                                           private: str) -> None:
    fake = slack.fake
    secret = fake.add_message("G0SECRET", files=[fake.add_file("board.ogg", audio("jfk_voice.ogg"),
                                                                mimetype="audio/ogg")])
    # The bot is in the private channel; Alice is not (and its member list takes several pages to read).
    fake.members["G0SECRET"] = {fake.bot_user_id, "UBOB"} | {f"U{n:05d}" for n in range(1_500)}
    status, answer, _ = await slack.command(f"{private}{fake.permalink('G0SECRET', secret['ts'])}")
    assert status == 200
    (refusal,) = await fake.wait_for(lambda: fake.responses)
    assert "only transcribe messages from conversations you're in" in refusal["text"]
    assert "board.ogg" not in json.dumps(fake.responses) + answer
    await slack.service.wait_idle()
    assert fake.downloads == []
    assert fake.ephemeral == []
    assert fake.bot_messages("G0SECRET") == []


async def test_a_member_far_down_the_member_list_may_link_its_messages(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    message = fake.add_message("G0TEAM", files=[fake.add_file("a.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")])
    fake.members["G0TEAM"] = {fake.bot_user_id} | {f"U{n:05d}" for n in range(1_500)} | {"UZOE"}
    await slack.command(f"private {fake.permalink('G0TEAM', message['ts'])}", user="UZOE")
    (answer,) = await fake.wait_for(lambda: fake.ephemeral)
    await slack.service.wait_idle()
    assert answer["user"] == "UZOE"
    assert wer(JFK, text_of(answer)) < 0.3


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ("application/json", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ("text/plain", b"502 Bad Gateway"),
])
async def test_a_proxy_page_instead_of_slacks_answer_gets_a_sentence(slack: Slack, audio: Any, content_type: str,
                                                                   body: bytes) -> None:
    fake = slack.fake
    fake.add_message(CHANNEL, files=[fake.add_file("a.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")])
    fake.break_next("conversations.history", content_type=content_type, body=body, times=10)
    status, _, _ = await slack.command("")
    assert status == 200
    (answer,) = await fake.wait_for(lambda: fake.responses)
    assert "Slack didn't answer properly" in answer["text"]


async def test_a_passing_proxy_error_is_retried(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    clip = fake.add_message(CHANNEL, files=[fake.add_file("a.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")])
    fake.break_next("conversations.history", content_type="text/plain", body=b"502 Bad Gateway")
    await slack.command("")
    (reply,) = await slack.replies(clip)
    assert wer(JFK, reply) < 0.3
    assert len(fake.calls_to("conversations.history")) == 2


async def test_private_transcribe_is_ephemeral(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    message = fake.add_message(CHANNEL, files=[fake.add_file("a.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")])
    await slack.command(f"private {fake.permalink(CHANNEL, message['ts'])}")
    ephemeral = await fake.wait_for(lambda: fake.ephemeral)
    await slack.service.wait_idle()
    assert ephemeral[0]["user"] == "UALICE"
    assert wer(JFK, text_of(ephemeral[0])) < 0.3
    assert fake.bot_messages(CHANNEL) == []


async def test_message_shortcut_transcribes_that_message(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    message = fake.add_message(CHANNEL, files=[fake.add_file("memo.webm", audio("jfk.webm"), mimetype="audio/webm")])
    body = shortcut_body(message_event(CHANNEL, message), channel=CHANNEL, response_url=fake.response_url())
    status, _ = await slack.post(body, "application/x-www-form-urlencoded")
    assert status == 200
    (reply,) = await slack.replies(message)
    assert wer(JFK, reply) < 0.3


async def test_shortcut_on_a_message_without_files_says_so(slack: Slack) -> None:
    message = slack.fake.add_message(CHANNEL, text="just words")
    body = shortcut_body(message_event(CHANNEL, message), channel=CHANNEL, response_url=slack.fake.response_url())
    await slack.post(body, "application/x-www-form-urlencoded")
    (answer,) = await slack.fake.wait_for(lambda: slack.fake.responses)
    assert "no audio or video" in answer["text"]


async def test_silence_says_no_speech(slack: Slack, audio: Any) -> None:
    message = await slack.share("quiet.ogg", audio("silence_10s.ogg"), mimetype="audio/ogg")
    (reply,) = await slack.replies(message)
    assert reply == "No speech detected."


async def test_random_bytes_get_an_answer_and_the_next_file_still_works(slack: Slack, audio: Any) -> None:
    broken = await slack.share("random_bytes.ogg", audio("random_bytes.ogg"), mimetype="audio/ogg")
    (answer,) = await slack.replies(broken)
    assert "couldn't read that file" in answer
    assert "Error" not in answer
    good = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    (reply,) = await slack.replies(good)
    assert wer(JFK, reply) < 0.3


async def test_retried_and_duplicate_events_are_processed_once(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    info = fake.add_file("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    message = fake.add_message(CHANNEL, files=[info])
    event = message_event(CHANNEL, message)
    assert await slack.event(event, event_id="Ev0001") == 200
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert await slack.event(event, event_id="Ev0001", headers=retry) == 200
    # The same share also arrives as file_shared to apps subscribed to it.
    shared = {"type": "file_shared", "file_id": info["id"], "user_id": "UALICE", "channel_id": CHANNEL,
              "event_ts": message["ts"]}
    assert await slack.event(shared, event_id="Ev0002") == 200
    (reply,) = await slack.replies(message)
    await slack.service.wait_idle()
    assert wer(JFK, reply) < 0.3
    assert len(fake.bot_messages(CHANNEL, message["ts"])) == 1
    assert len(fake.downloads) == 1


async def test_an_event_redelivered_after_a_restart_is_answered_once(fake: FakeSlack, settings: Any,
                                                                     tiny_engine: Any, audio: Any) -> None:
    from chatscribe.core.service import TranscriptionService

    info = fake.add_file("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    message = fake.add_message(CHANNEL, files=[info])
    event = message_event(CHANNEL, message)
    async with TranscriptionService(settings=settings, engine=tiny_engine) as first, \
            running(fake, first) as slack:
        assert await slack.event(event, event_id="EvRestart1") == 200
        # acked only once journaled: a crash after the 200 cannot lose the note
        assert len(first.journal.states()) == 1
        await slack.replies(message)
    # Slack did not see that 200 (a timeout), so it delivers the event again, to the restarted process.
    async with TranscriptionService(settings=settings, engine=tiny_engine) as second, \
            running(fake, second) as slack:
        retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        assert await slack.event(event, event_id="EvRestart1", headers=retry) == 200
        await second.wait_idle()
        assert len(second.journal.states()) == 1  # the first process's job, and no second one
    assert len(fake.bot_messages(CHANNEL, message["ts"])) == 1
    assert len(fake.downloads) == 1
    seen = settings.data_dir / "slack-events.sqlite3"
    assert seen.stat().st_mode & 0o077 == 0


async def test_bot_messages_are_ignored(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    info = fake.add_file("bot.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    message = fake.add_message(CHANNEL, files=[info], user="UOTHERBOT")
    assert await slack.event({**message_event(CHANNEL, message), "bot_id": "B0THER"}) == 200
    own = fake.add_message(CHANNEL, files=[info], user=fake.bot_user_id)
    assert await slack.event(message_event(CHANNEL, own)) == 200
    # a person's share after them is answered, and it is the only thing answered
    person = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    await slack.replies(person)
    assert fake.bot_messages(CHANNEL, message["ts"]) == []
    assert fake.bot_messages(CHANNEL, own["ts"]) == []


async def test_bad_or_stale_signatures_are_rejected_and_nothing_is_done(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    info = fake.add_file("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    body = event_body(message_event(CHANNEL, fake.add_message(CHANNEL, files=[info])))
    assert (await slack.post(body, "application/json", secret="not-the-secret"))[0] == 401
    assert (await slack.post(body, "application/json", timestamp=int(time.time()) - 600))[0] == 401
    challenge = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"})
    status, answer = await slack.post(challenge, "application/json")
    assert status == 200
    assert "c-123" in answer
    await slack.service.wait_idle()
    assert fake.downloads == []
    assert fake.bot_messages(CHANNEL) == []


async def test_foreign_file_host_is_refused_and_gets_no_token(slack: Slack) -> None:
    elsewhere = RecordingHost()
    await elsewhere.start()
    try:
        message = await slack.share("evil.ogg", b"OggS", mimetype="audio/ogg", url=f"{elsewhere.url}/steal")
        (answer,) = await slack.replies(message)
    finally:
        await elsewhere.stop()
    assert "won't download" in answer
    assert not any(slack.fake.token in str(headers) for headers in elsewhere.requests)
    assert elsewhere.requests == []


async def test_login_page_instead_of_the_file_names_the_scope(slack: Slack, audio: Any) -> None:
    slack.fake.files_read_scope = False
    message = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    (answer,) = await slack.replies(message)
    assert "files:read" in answer


async def test_a_file_the_host_will_not_hand_over_says_its_status(slack: Slack, audio: Any) -> None:
    info = slack.fake.add_file("gone.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    slack.fake.file_status[info["id"]] = 404  # deleted between the share and the download
    message = slack.fake.add_message(CHANNEL, files=[info])
    assert await slack.event(message_event(CHANNEL, message)) == 200
    (answer,) = await slack.replies(message)
    assert answer == "Slack wouldn't hand over that file (HTTP 404)."


async def test_a_file_host_that_keeps_redirecting_is_given_up_in_the_channels_language(slack: Slack,
                                                                                      audio: Any) -> None:
    slack.fake.admins.add("UALICE")
    _, _, response_url = await slack.command("replies de")
    await slack.fake.response_at(response_url)
    assert slack.service.preferences.get("slack", CHANNEL, "replies") == "de"
    info = slack.fake.add_file("loop.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    slack.fake.redirect_loop.add(info["id"])
    message = slack.fake.add_message(CHANNEL, files=[info])
    assert await slack.event(message_event(CHANNEL, message)) == 200
    (answer,) = await slack.replies(message)
    assert answer == "Ich konnte diese Datei nicht herunterladen: Slack hat immer weiter umgeleitet."
    assert len(slack.fake.downloads) == MAX_REDIRECTS + 1
    assert all(authorized for _, authorized in slack.fake.downloads), "the token follows Slack's own redirects"


async def test_too_large_is_refused_before_download(slack: Slack, audio: Any) -> None:
    limit = slack.service.max_file_bytes
    message = await slack.share("huge.mov", audio("jfk_voice.ogg"), mimetype="video/quicktime", size=limit + 1)
    (answer,) = await slack.replies(message)
    assert "too large" in answer
    assert slack.fake.downloads == []


async def test_a_channel_the_bot_was_removed_from_is_given_up_not_retried(slack: Slack, audio: Any,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    fake = slack.fake
    info = fake.add_file("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    message = fake.add_message(CHANNEL, files=[info])
    fake.outside.add(CHANNEL)  # removed from the channel right after the share
    assert await slack.event(message_event(CHANNEL, message)) == 200
    await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    await slack.service.wait_idle()
    assert len(fake.calls_to("chat.postMessage")) == 1  # no retries of a hopeless answer
    assert set(slack.service.journal.states().values()) == {"delivered"}
    assert "not_in_channel" in caplog.text


async def test_rate_limit_is_waited_out(slack: Slack, audio: Any) -> None:
    slack.fake.rate_limit_next("chat.postMessage", retry_after_s=1)
    message = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    (reply,) = await slack.replies(message)
    assert wer(JFK, reply) < 0.3
    assert len(slack.fake.calls_to("chat.postMessage")) == 2


async def test_auto_off_leaves_shares_alone_until_asked(slack: Slack, audio: Any) -> None:
    slack.fake.admins.add("UALICE")
    status, _, response_url = await slack.command("auto off")
    assert status == 200
    assert "off" in await slack.fake.response_at(response_url)
    message = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    await slack.command("")  # asked explicitly: transcribed once, by the command alone
    (reply,) = await slack.replies(message)
    assert wer(JFK, reply) < 0.3
    assert len(slack.fake.downloads) == 1


async def test_a_plain_member_cannot_change_settings(slack: Slack) -> None:
    status, _, response_url = await slack.command("auto off", user="UBOB")
    assert status == 200
    assert "Only workspace admins, this channel's creator" in await slack.fake.response_at(response_url)
    assert slack.service.preferences.get("slack", CHANNEL, "auto") is None


@pytest.mark.parametrize("who", ["admin", "owner", "creator", "listed"])
async def test_admins_owners_the_creator_and_listed_users_may_change_settings(fake: FakeSlack, service: Any,
                                                                              who: str) -> None:
    fake.admins.add("UADMIN")
    fake.owners.add("UOWNER")
    fake.creators[CHANNEL] = "UCAROL"
    user = {"admin": "UADMIN", "owner": "UOWNER", "creator": "UCAROL", "listed": "ULISTED"}[who]
    async with running(fake, service, settings_users="ULISTED, U0OTHER") as slack:
        _, _, response_url = await slack.command("format vtt", user=user)
        assert ".vtt" in await fake.response_at(response_url)
    assert service.preferences.get("slack", CHANNEL, "format") == "vtt"


async def test_anyone_may_change_settings_of_their_direct_messages_with_the_bot(slack: Slack) -> None:
    _, _, response_url = await slack.command("auto off", channel="D0BOBDM", user="UBOB")
    assert "off" in await slack.fake.response_at(response_url)


async def test_forget_deletes_the_channels_transcripts_and_settings(slack: Slack, audio: Any) -> None:
    fake = slack.fake
    fake.creators[CHANNEL] = "UALICE"
    _, _, response_url = await slack.command("format srt")
    assert ".srt" in await fake.response_at(response_url)
    info = fake.add_file("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    first = fake.add_message(CHANNEL, files=[info])
    assert await slack.event(message_event(CHANNEL, first)) == 200
    await slack.replies(first)

    _, _, response_url = await slack.command("forget", user="UBOB")  # not allowed: nothing is deleted
    assert "Only workspace admins" in await fake.response_at(response_url)
    _, _, response_url = await slack.command("forget")
    assert (await fake.response_at(response_url)).startswith("Done: I've forgotten this conversation's data")
    assert slack.service.preferences.get("slack", CHANNEL, "format") is None

    again = fake.add_message(CHANNEL, files=[info])  # the same file shared again: no cached answer left
    assert await slack.event(message_event(CHANNEL, again)) == 200
    (reply,) = await slack.replies(again)
    assert wer(JFK, reply) < 0.3
    assert len(fake.downloads) == 2


def test_settings_users_must_be_user_ids() -> None:
    with pytest.raises(ValueError, match="not a Slack user id"):
        SlackSettings(_env_file=None, settings_users="alice")  # type: ignore[call-arg]


async def _deliver(slack: Slack, transcript: Transcript, thread: dict[str, Any]) -> None:
    """Deliver a made-up transcript through the bot's real sending path (text no speech can produce)."""
    reference = {"channel": CHANNEL, "thread_ts": thread["ts"], "user": "UALICE", "private": "", "file_id": "F1",
                 "url": "", "message_ts": thread["ts"]}

    async def never(limit: int) -> bytes:
        raise AssertionError("no download expected")

    request = MediaRequest(platform="slack", chat_id=CHANNEL, user_id="UALICE", fetch=never, file_name="talk.m4a",
                           reference=reference)

    await slack.bot.deliver(Job("job1", request, TranscribeOptions()), transcript, MemoryReceipt())


def _transcript(text: str) -> Transcript:
    words = text.split(" ")
    segments = tuple(Segment(start=i, end=i + 1, text=" ".join(words[i:i + 40]))
                     for i in range(0, len(words), 40))
    return Transcript(segments=segments, language="en", language_probability=1.0, duration_s=len(segments),
                      model="tiny.en")


async def test_long_transcript_fits_slack_and_nothing_is_lost(slack: Slack) -> None:
    sentence = "Ask not what your country can do for you & ask <what> you can do for your country."
    transcript = _transcript(" ".join([sentence] * 200))  # ~17,000 characters, ~19,000 escaped
    thread = slack.fake.add_message(CHANNEL, text="the talk")
    await _deliver(slack, transcript, thread)
    posted = slack.fake.bot_messages(CHANNEL, thread["ts"])
    assert len(posted) > 2  # every one accepted by the fake's Slack limits (sections ≤ 3000, blocks < 13,000)
    assert "".join(text_of(m) for m in posted) == transcript.text

    huge = _transcript(" ".join([sentence] * 600))  # past max_parts messages: a preview and the file
    other = slack.fake.add_message(CHANNEL, text="the long talk")
    await _deliver(slack, huge, other)
    (preview,) = slack.fake.bot_messages(CHANNEL, other["ts"])
    (upload,) = slack.fake.uploads.values()
    assert upload.data.decode() == huge.text
    assert upload.thread_ts == other["ts"]
    assert huge.text.startswith(text_of(preview).removesuffix(" …"))


async def test_format_command_picks_the_file_type_of_long_transcripts(slack: Slack) -> None:
    slack.fake.creators[CHANNEL] = "UALICE"
    status, _, response_url = await slack.command("format srt")
    assert status == 200
    assert ".srt" in await slack.fake.response_at(response_url)
    sentence = "Ask not what your country can do for you, ask what you can do for your country."
    thread = slack.fake.add_message(CHANNEL, text="the long talk")
    await _deliver(slack, _transcript(" ".join([sentence] * 600)), thread)
    (upload,) = slack.fake.uploads.values()
    assert upload.filename == "talk.srt"
    assert upload.data.decode().startswith("1\n00:00:00,000 --> 00:00:01,000\n")


async def test_unknown_command_text_gets_help(slack: Slack) -> None:
    status, answer, _ = await slack.command("please transcribe everything")
    assert status == 200
    assert "didn't understand" in answer
    assert "/transcribe auto on|off" in answer


async def test_channel_mentions_in_a_transcript_are_escaped(slack: Slack) -> None:
    thread = slack.fake.add_message(CHANNEL, text="a clip")
    await _deliver(slack, _transcript("Hey <!channel> look at <https://evil.example|this> & <@U123>"), thread)
    (posted,) = slack.fake.bot_messages(CHANNEL, thread["ts"])
    raw = json.dumps(posted)
    assert "<!channel>" not in raw
    assert "<@U123>" not in raw
    assert "<https" not in raw
    assert "&lt;!channel&gt;" in posted["text"]
    assert text_of(posted) == "Hey <!channel> look at <https://evil.example|this> & <@U123>"


async def _shared_with_a_status(fake: FakeSlack, service: Any, name: str, data: bytes) -> dict[str, Any]:
    """A file shared in CHANNEL, submitted by a bot that posts its status at once; returns the message once
    the service is idle."""
    from chatscribe.adapters.slack import Target, parse_file

    settings = SlackSettings(_env_file=None, bot_token=fake.token, signing_secret=SECRET,  # type: ignore[call-arg]
                             api_url=fake.api_url, status_after_s=0)
    bot = SlackBot(settings=settings, service=service)
    await bot.start()
    try:
        info = fake.add_file(name, data, mimetype="audio/ogg")
        message = fake.add_message(CHANNEL, files=[info])
        file = parse_file(info)
        assert file is not None
        await bot.submit(file, Target(CHANNEL, message["ts"], "UALICE"), message_ts=message["ts"])
        await service.wait_idle()
    finally:
        await bot.stop()
    return message


async def test_status_message_is_replaced_by_the_transcript(fake: FakeSlack, service: Any, audio: Any) -> None:
    message = await _shared_with_a_status(fake, service, "jfk_voice.ogg", audio("jfk_voice.ogg"))
    (reply,) = fake.bot_messages(CHANNEL, message["ts"])
    assert reply.get("edited")
    assert wer(JFK, text_of(reply)) < 0.3
    assert fake.calls_to("chat.update")[-1].params["ts"] == reply["ts"]


async def test_socket_mode_serves_the_same_handlers(fake: FakeSlack, service: Any, audio: Any) -> None:
    settings = SlackSettings(_env_file=None, bot_token=fake.token, signing_secret=SECRET,  # type: ignore[call-arg]
                             app_token=fake.app_token, api_url=fake.api_url)
    bot = SlackBot(settings=settings, service=service)
    await bot.start()
    try:
        assert bot.not_ready() is None
        info = fake.add_file("jfk.m4a", audio("jfk.m4a"), mimetype="audio/mp4", subtype="slack_audio")
        message = fake.add_message(CHANNEL, files=[info])
        payload = json.loads(event_body(message_event(CHANNEL, message), event_id="EvSocket1"))
        envelope = await fake.socket_send("events_api", payload)
        await fake.wait_for(lambda: any(ack.get("envelope_id") == envelope for ack in fake.socket_acks))
        assert len(service.journal.states()) == 1  # acked only once the note was journaled
        await fake.socket_send("events_api", payload, retry_attempt=1)  # Slack's retry: same event_id
        (reply,) = await fake.wait_for(lambda: fake.bot_messages(CHANNEL, message["ts"]))
        assert wer(JFK, text_of(reply)) < 0.3
        assert any(ack.get("envelope_id") == envelope for ack in fake.socket_acks)

        command = command_payload("help", channel=CHANNEL, response_url=fake.response_url())
        acked = await fake.socket_send("slash_commands", command)
        ack = await fake.wait_for(lambda: next((a for a in fake.socket_acks if a["envelope_id"] == acked), None))
        assert "/transcribe auto on|off" in ack["payload"]["text"]
        await service.wait_idle()
    finally:
        await bot.stop()
    assert len(fake.bot_messages(CHANNEL, message["ts"])) == 1
    assert bot.not_ready() is not None


async def test_without_a_signing_secret_no_http_endpoint_is_served(fake: FakeSlack, service: Any) -> None:
    settings = SlackSettings(_env_file=None, bot_token=fake.token,  # type: ignore[call-arg]
                             app_token=fake.app_token, api_url=fake.api_url)
    assert SlackBot(settings=settings, service=service).routes() == []


async def test_refused_app_token_is_a_clear_config_error(fake: FakeSlack, service: Any) -> None:
    settings = SlackSettings(_env_file=None, bot_token=fake.token, signing_secret=SECRET,  # type: ignore[call-arg]
                             app_token="xapp-1-wrong", api_url=fake.api_url)
    bot = SlackBot(settings=settings, service=service)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        await bot.start()
    await bot.stop()


async def test_an_error_page_at_start_names_the_api_url_not_the_token(fake: FakeSlack, service: Any) -> None:
    fake.break_next("auth.test", status=503, times=5)
    settings = SlackSettings(_env_file=None, bot_token=fake.token, signing_secret=SECRET,  # type: ignore[call-arg]
                             api_url=fake.api_url)
    bot = SlackBot(settings=settings, service=service)
    with pytest.raises(ConfigError, match="SLACK_API_URL"):
        await bot.start()
    await bot.stop()
    assert len(fake.calls_to("auth.test")) == 3  # retried twice, as a passing outage would be


async def test_accepted_work_survives_a_restart(fake: FakeSlack, settings: Any, tiny_engine: Any,
                                               audio: Any) -> None:
    from chatscribe.core.service import TranscriptionService

    fake.download_gate = asyncio.Event()
    first = TranscriptionService(settings=settings, engine=tiny_engine)
    async with running(fake, first) as slack:
        message = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
        await fake.wait_for(lambda: fake.downloads)  # accepted and running when the process goes down
        await first.aclose(grace_s=0)
    fake.download_gate.set()

    second = TranscriptionService(settings=settings, engine=tiny_engine)
    try:
        async with running(fake, second):
            assert await second.resume("slack") == 1
            (reply,) = await fake.wait_for(lambda: fake.bot_messages(CHANNEL, message["ts"]))
            await second.wait_idle()
    finally:
        await second.aclose()
    assert wer(JFK, text_of(reply)) < 0.3
    assert [authorized for _, authorized in fake.downloads] == [True, True]


async def test_too_long_recording_gets_its_own_answer(fake: FakeSlack, settings: Any, tiny_engine: Any,
                                                     audio: Any) -> None:
    from chatscribe.core.service import TranscriptionService

    short_limit = settings.model_copy(update={"max_duration_s": 5})
    async with TranscriptionService(settings=short_limit, engine=tiny_engine) as service, \
            running(fake, service) as slack:
        message = await slack.share("jfk.flac", audio("jfk.flac"), mimetype="audio/flac")
        (answer,) = await slack.replies(message)
    assert "too long" in answer


async def test_a_file_larger_than_it_claimed_stops_downloading_at_the_limit(fake: FakeSlack, settings: Any,
                                                                            tiny_engine: Any, audio: Any) -> None:
    from chatscribe.core.service import TranscriptionService

    small_limit = settings.model_copy(update={"max_file_mb": 0.05})  # 50 kB; jfk.m4a is 93 kB
    async with TranscriptionService(settings=small_limit, engine=tiny_engine) as service, \
            running(fake, service) as slack:
        message = await slack.share("jfk.m4a", audio("jfk.m4a"), mimetype="audio/mp4", size=1_000)
        (answer,) = await slack.replies(message)
    assert "too large" in answer
    assert len(fake.downloads) == 1


def test_manifest_matches_what_the_bot_serves() -> None:
    manifest = yaml.safe_load((ROOT / "deploy" / "slack-app-manifest.yaml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "files:read", "files:write", "channels:history", "groups:history",
            "im:history", "mpim:history", "channels:read", "groups:read", "im:read", "mpim:read",
            "users:read"} <= scopes
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/transcribe"
    assert command["url"].endswith("/slack/events")
    (shortcut,) = manifest["features"]["shortcuts"]
    assert (shortcut["type"], shortcut["callback_id"]) == ("message", "transcribe")
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {"message.channels", "message.groups",
                                                                  "message.im", "message.mpim"}
    assert settings["interactivity"]["request_url"].endswith("/slack/events")


def _run_env(fake: FakeSlack, tmp_path: Path, port: int) -> dict[str, str]:
    env = {**os.environ, "SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": fake.api_url, "CHATSCRIBE_DATA_DIR": str(tmp_path / "data"),
           "CHATSCRIBE_MODEL": "tiny.en", "CHATSCRIBE_DEVICE": "cpu", "CHATSCRIBE_HTTP_PORT": str(port),
           "CHATSCRIBE_HTTP_HOST": "127.0.0.1", "CHATSCRIBE_LOG_LEVEL": "DEBUG"}
    env.pop("SLACK_APP_TOKEN", None)
    return env


@contextlib.asynccontextmanager
async def _chatscribe_run(fake: FakeSlack, tmp_path: Path, log_name: str) -> AsyncIterator[str]:
    """`chatscribe run slack` as a real process on tmp_path/data; stopped with SIGTERM (graceful) at the end."""
    port = free_port()
    async with chatscribe_process("run", "slack", env=_run_env(fake, tmp_path, port), cwd=tmp_path,
                                  log=tmp_path / log_name, port=port) as process:
        yield f"http://127.0.0.1:{port}"
    assert process.returncode == 0


async def _post_event(base: str, event: dict[str, Any], event_id: str, headers: dict[str, str] | None = None) -> int:
    body = event_body(event, event_id=event_id)
    sent = {"Content-Type": "application/json", **signed_headers(SECRET, body), **(headers or {})}
    async with aiohttp.ClientSession() as http, http.post(f"{base}/slack/events", data=body, headers=sent) as response:
        return response.status


async def test_a_restarted_chatscribe_run_does_not_answer_a_redelivered_event_again(
        fake: FakeSlack, audio: Any, tmp_path: Path) -> None:
    info = fake.add_file("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    message = fake.add_message(CHANNEL, files=[info])
    async with _chatscribe_run(fake, tmp_path, "first.log") as base:
        assert await _post_event(base, message_event(CHANNEL, message), "EvProcess1") == 200
        await fake.wait_for(lambda: fake.bot_messages(CHANNEL, message["ts"]), timeout=120)
    async with _chatscribe_run(fake, tmp_path, "second.log") as base:
        retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        assert await _post_event(base, message_event(CHANNEL, message), "EvProcess1", retry) == 200
        # A new share after it is answered: the process is working, and the retry was dropped before it.
        other = fake.add_message(CHANNEL, files=[fake.add_file("jfk.flac", audio("jfk.flac"), mimetype="audio/flac")])
        assert await _post_event(base, message_event(CHANNEL, other), "EvProcess2") == 200
        await fake.wait_for(lambda: fake.bot_messages(CHANNEL, other["ts"]), timeout=120)
    # SIGTERM lets accepted work finish: a second answer to the first share would have been posted by now.
    assert len(fake.bot_messages(CHANNEL, message["ts"])) == 1
    assert "event EvProcess1 already handled" in (tmp_path / "second.log").read_text()


async def test_chatscribe_run_slack_end_to_end(fake: FakeSlack, audio: Any, tmp_path: Path) -> None:
    async with _chatscribe_run(fake, tmp_path, "chatscribe.log") as base:  # exits 0 after SIGTERM
        info = fake.add_file("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
        message = fake.add_message(CHANNEL, files=[info])
        body = event_body(message_event(CHANNEL, message))
        headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
        async with aiohttp.ClientSession() as http, http.post(f"{base}/slack/events", data=body,
                                                              headers=headers) as response:
            assert response.status == 200
        (reply,) = await fake.wait_for(lambda: fake.bot_messages(CHANNEL, message["ts"]), timeout=120)
        assert wer(JFK, text_of(reply)) < 0.3
    logged = (tmp_path / "chatscribe.log").read_text()
    assert fake.token not in logged
    assert SECRET not in logged


async def test_a_long_voice_note_shows_its_words_in_the_status_while_it_is_transcribed(
        fake: FakeSlack, service: Any, audio: Any) -> None:
    from chatscribe.adapters.slack import render_transcript

    note = audio("multilingual_voice.ogg")  # a minute: two windows, the first one's words arrive early
    message = await _shared_with_a_status(fake, service, "voice.ogg", note)

    answer = fake.bot_messages(CHANNEL, message["ts"])
    updates = [c for c in fake.calls_to("chat.update") if c.params["ts"] == answer[0]["ts"]]
    before_answer = [fake.calls_to("chat.postMessage")[0], *updates[:-1]]
    live = [text_of(c.params) for c in before_answer if "\n\n" in text_of(c.params)]
    assert live, "a status before the answer showed words already decoded"
    assert all(text.startswith("Transcribing") for text in live)
    first_words = live[0].split("\n\n", 1)[1].split()[:3]
    assert len(first_words) == 3
    assert text_of(answer[0]).split()[:3] == first_words, "the words shown begin the transcript"
    gaps = [b.at - a.at for a, b in zip(before_answer, before_answer[1:], strict=False)]
    assert all(gap >= 2.9 for gap in gaps), f"status updates {gaps} s apart"

    key = transcript_key(service.runner.model_id, TranscribeOptions(), content_hash(note))
    cached = service.cache.get(key)
    assert cached is not None
    unchanged = render_transcript(cached, file_name="voice.ogg", max_parts=service.settings.max_parts)
    assert [text_of(m) for m in answer] == [text_of({"blocks": part.blocks()}) for part in unchanged], \
        "the answer is what it would have been without live text"
