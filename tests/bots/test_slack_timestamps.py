"""`/transcribe timestamps on|off` as a Slack channel uses it: the real bot against the fake Slack on
127.0.0.1, real SQLite, the real tiny.en model on a real recording."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest

from chatscribe.core.service import TranscriptionService
from tests.bots.test_slack_bot import CHANNEL, JFK, running
from tests.fakes.slack_api import FakeSlack
from tests.wer import wer

MARK = re.compile(r"\[(?:\d+:)?\d{2}:\d{2}\] ")


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


async def test_slack_answer_shows_time_marks_only_while_the_channel_has_timestamps_on(
        slack_fake: FakeSlack, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    slack_fake.creators[CHANNEL] = "UALICE"  # the channel's creator may change its settings
    async with running(slack_fake, service) as slack:
        _, _, response_url = await slack.command("timestamps on")
        await slack_fake.response_at(response_url)
        first = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
        (marked,) = await slack.replies(first)

        _, _, response_url = await slack.command("timestamps off")
        await slack_fake.response_at(response_url)
        again = await slack.share("jfk_again.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
        (plain,) = await slack.replies(again)

    assert marked.startswith("[00:00] "), marked
    assert wer(JFK, MARK.sub("", marked.split("\n\n")[0])) < 0.3, marked
    assert not MARK.search(plain), plain
    assert wer(JFK, plain.split("\n\n")[0]) < 0.3, plain
