"""Slack payloads -> MediaRequest pieces, and transcripts -> messages that Slack accepts and cannot abuse."""

from __future__ import annotations

import pytest

from chatscribe.adapters import slack
from chatscribe.core.errors import MediaTooLarge, UnreadableMedia
from chatscribe.core.settings import SettingChange
from chatscribe.core.transcript import Segment, Transcript

FILE = {
    "id": "F1", "name": "audio_message.mp4", "mimetype": "audio/mp4", "filetype": "mp4", "size": 1234,
    "subtype": "slack_audio", "url_private_download": "https://files.slack.com/files-pri/T1-F1/download",
}


def transcript(*texts: str, duration: float = 11.0) -> Transcript:
    segments = tuple(Segment(start=i, end=i + 1, text=text) for i, text in enumerate(texts))
    return Transcript(segments=segments, language="en", language_probability=0.9, duration_s=duration,
                      model="tiny.en")


def long_text(chars: int) -> str:
    sentence = "Ask not what your country can do for you & ask <what> you can do for your country. "
    return (sentence * (chars // len(sentence) + 1))[:chars].strip()


def test_escape_neutralises_mentions_and_links() -> None:
    text = "Hey <!channel>, see <https://evil.example|this> & tell <@U123>"
    escaped = slack.escape(text)
    assert "<" not in escaped
    assert ">" not in escaped
    assert "&lt;!channel&gt;" in escaped
    assert slack.unescape(escaped) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://team.slack.com/archives/C0123/p1700000000123456", slack.Permalink("C0123", "1700000000.123456")),
        ("<https://team.slack.com/archives/C0123/p1700000000123456?thread_ts=1699999999.000100&cid=C0123>",
         slack.Permalink("C0123", "1700000000.123456", "1699999999.000100")),
        ("look https://x.enterprise.slack.com/archives/G42/p1700000000000001 there",
         slack.Permalink("G42", "1700000000.000001")),
        ("https://example.com/not/a/permalink", None),
    ],
)
def test_parse_permalink(text: str, expected: slack.Permalink | None) -> None:
    assert slack.parse_permalink(text) == expected


def test_parse_command() -> None:
    assert slack.parse_command("") == slack.Command("transcribe")
    assert slack.parse_command("private") == slack.Command("transcribe", private=True)
    linked = slack.parse_command("private https://t.slack.com/archives/C1/p1700000000000002")
    assert linked.private
    assert linked.permalink == slack.Permalink("C1", "1700000000.000002")
    assert slack.parse_command("auto OFF") == slack.Command("setting", change=SettingChange("auto", "off"))
    assert slack.parse_command("format srt") == slack.Command("setting", change=SettingChange("format", "srt"))
    assert slack.parse_command("language German").change == SettingChange("language", "de")
    assert slack.parse_command("vocab Q&amp;A, Kubernetes").change == SettingChange("vocab", "Q&A, Kubernetes")
    assert slack.parse_command("settings") == slack.Command("settings")
    refused = slack.parse_command("auto maybe")
    assert (refused.action, refused.problem) == ("refused", "Automatic transcription takes on or off.")
    assert slack.parse_command("language fr", offered=("en", "de")).action == "refused"
    assert slack.parse_command("please do it").problem
    assert slack.parse_command("forget") == slack.Command("forget")
    assert slack.parse_command("forget everything").problem
    assert "/transcribe forget" in slack.HELP


def test_media_is_decided_by_what_slack_detected_not_the_name() -> None:
    clip = slack.parse_file({**FILE, "name": "Recording.txt"})
    assert clip is not None
    assert clip.is_media
    assert clip.kind == "voice"
    video_clip = slack.parse_file({**FILE, "mimetype": "video/mp4", "subtype": "slack_video", "name": "x.pdf"})
    assert video_clip is not None
    assert video_clip.is_media
    assert video_clip.kind == "video"
    pdf_named_mp3 = slack.parse_file({**FILE, "name": "song.mp3", "mimetype": "application/pdf",
                                      "filetype": "pdf", "subtype": None})
    assert pdf_named_mp3 is not None
    assert not pdf_named_mp3.is_media
    assert slack.parse_file({**FILE, "mode": "tombstone"}) is None


def test_media_request_carries_what_a_restart_needs() -> None:
    file = slack.parse_file(FILE)
    assert file is not None
    target = slack.Target("C1", "1700000000.000100", "U1")

    async def fetch(limit: int) -> bytes:
        return b""

    request = slack.media_request(file, target, message_ts="1700000000.000100", fetch=fetch)
    assert (request.platform, request.chat_id, request.user_id) == ("slack", "C1", "U1")
    assert request.platform_file_id == "F1"
    assert request.size_bytes == 1234
    assert request.reference["url"] == FILE["url_private_download"]
    assert slack.target_of(request.reference) == target


def test_latest_media_message_skips_text_and_documents() -> None:
    pdf = {**FILE, "id": "F2", "mimetype": "application/pdf", "filetype": "pdf", "subtype": None}
    messages = [{"ts": "3", "text": "hi"}, {"ts": "2", "files": [pdf]}, {"ts": "1", "files": [FILE]}]
    found = slack.latest_media_message(messages)
    assert found is not None
    assert found["ts"] == "1"


def test_long_transcript_fits_slack_limits_and_loses_nothing() -> None:
    text = long_text(25_000)
    parts = slack.render_transcript(transcript(text), file_name="talk.m4a", max_parts=5)
    assert all(isinstance(p, slack.SlackMessage) for p in parts)
    assert len(parts) > 1
    for part in parts:
        assert isinstance(part, slack.SlackMessage)
        assert all(0 < len(s) <= 3000 for s in part.sections)
        assert sum(len(s) for s in part.sections) <= 10_000
        assert len(part.text) <= slack.FALLBACK_CHARS
    joined = "".join(slack.unescape(s) for p in parts if isinstance(p, slack.SlackMessage) for s in p.sections)
    assert joined == text


def test_past_max_parts_the_text_goes_in_a_file_with_a_preview() -> None:
    text = long_text(40_000)
    parts = slack.render_transcript(transcript(text), file_name="talk.m4a", max_parts=2, upload_format="txt")
    assert len(parts) == 2
    preview, upload = parts
    assert isinstance(preview, slack.SlackMessage)
    assert isinstance(upload, slack.SlackUpload)
    assert upload.content == text
    assert upload.filename == "talk.txt"
    assert len(preview.sections[0]) < 3000
    assert "attached" in preview.context


def test_no_speech_and_errors_are_short_sentences() -> None:
    (silent,) = slack.render_transcript(transcript(), file_name="a.ogg", max_parts=3)
    assert isinstance(silent, slack.SlackMessage)
    assert silent.sections == ("No speech detected.",)
    error = slack.render_error(MediaTooLarge(300_000_000, 100_000_000), file_name="<big>.mov")
    assert "too large" in error.sections[0]
    assert "&lt;big&gt;" in error.context
    assert "decode" in slack.render_error(UnreadableMedia("EOFError")).sections[0]
    assert "EOFError" not in slack.render_error(UnreadableMedia("EOFError")).sections[0]


def test_blocks_are_verbatim_so_slack_parses_nothing() -> None:
    (message,) = slack.render_transcript(transcript("Hey <!channel> & @here"), file_name=None, max_parts=3)
    assert isinstance(message, slack.SlackMessage)
    section = message.blocks()[0]["text"]
    assert section["verbatim"] is True
    assert section["text"] == "Hey &lt;!channel&gt; &amp; @here"


def test_share_of_finds_the_message_in_the_channel() -> None:
    info = {"shares": {"private": {"G1": [{"ts": "5.000001", "thread_ts": "4.000001"}]}}}
    assert slack.share_of(info, "G1") == ("5.000001", "4.000001")
    assert slack.share_of(info, "C9") is None



def test_a_status_longer_than_one_section_is_split_into_sections_slack_accepts() -> None:
    words = "Transcribing… 40%\n\n" + " ".join(f"word{i}" for i in range(1200))  # ~8,000 characters of live text
    notice = slack.render_notice(words)
    assert len(notice.sections) > 1
    assert all(len(section) <= slack.SECTION_LIMIT for section in notice.sections)
    assert "".join(notice.sections).replace("\n", " ").split() == words.replace("\n", " ").split()
