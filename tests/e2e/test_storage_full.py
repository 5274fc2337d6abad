"""`chatscribe run slack` with its data dir on a real small tmpfs (tests/storage_tools.py) that fills up:
the person sharing a recording while the disk is full is told so in the thread, nothing is logged as a
traceback, and once space returns the next recording is answered as usual, by the same process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.conftest import CHANNEL, SECRET, SlackProcess
from tests.e2e.kill_burst import transcribes_opening
from tests.fakes.slack_api import command_body, signed_headers
from tests.storage_tools import SmallDisk, mounted_small_disk

FULL = "I can't take new recordings right now: my storage is full. Please try again later."


@pytest.fixture
async def small_disk(chatscribe: SlackProcess) -> AsyncIterator[SmallDisk]:
    with mounted_small_disk(chatscribe.data_dir) as disk:
        yield disk
        await chatscribe.close()  # the process lets go of the files before the tmpfs is unmounted


async def test_a_full_disk_is_told_to_the_person_and_the_process_takes_work_again_when_space_returns(
    chatscribe: SlackProcess, small_disk: SmallDisk, audio: Any
) -> None:
    await chatscribe.start()
    before = await chatscribe.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
    await chatscribe.until(lambda: set(chatscribe.journal().values()) == {"delivered"}, "the first answer")
    assert [transcribes_opening(t) for t in chatscribe.sent(before)] == [True]

    small_disk.fill()
    refused = await chatscribe.share("jfk.m4a", audio("jfk.m4a"), mimetype="audio/mp4")
    await chatscribe.until(lambda: chatscribe.sent(refused), "the answer to the recording shared on a full disk")
    assert chatscribe.sent(refused) == [FULL]
    assert len(chatscribe.journal()) == 1  # refused before anything was promised: nothing to resume later
    # The channel's creator changes a setting: it cannot be saved, and is told so.
    url = chatscribe.fake.response_url()
    body = command_body("format srt", channel=CHANNEL, response_url=url, user="UCREATOR")
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_headers(SECRET, body)}
    async with chatscribe.http.post(f"{chatscribe.base}/slack/events", data=body, headers=headers) as response:
        assert response.status == 200
    assert await chatscribe.fake.response_at(url) == (
        "I can't save settings right now: my storage is full. Please try again later.")

    small_disk.free()
    after = await chatscribe.share("jfk.flac", audio("jfk.flac"), mimetype="audio/flac")
    await chatscribe.until(lambda: chatscribe.sent(after), "the answer once space is back")
    assert [transcribes_opening(t) for t in chatscribe.sent(after)] == [True]
    await chatscribe.until(lambda: set(chatscribe.journal().values()) == {"delivered"}
                           and len(chatscribe.journal()) == 2, "the journal to record the answer")
    assert chatscribe.process is not None
    assert chatscribe.process.returncode is None
    records = chatscribe.log_records(1)
    assert not [r for r in records if r.get("level") in ("ERROR", "CRITICAL") or "Traceback" in str(r)]
    assert any("cannot be written" in r["message"] for r in records)
