"""core/live.py with the real Silero model on real speech: utterances found, silence and clicks ignored."""

from __future__ import annotations

import wave
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

from chatscribe.core.live import LiveAudio, SpeechStarted, SpeechStopped, VadSettings, pcm16_wav
from tests.audio_tools import pcm16


def _feed(live: LiveAudio, pcm: bytes, piece_ms: int = 100) -> list[SpeechStarted | SpeechStopped]:
    step = live.rate * piece_ms // 1000 * 2
    events: list[SpeechStarted | SpeechStopped] = []
    for i in range(0, len(pcm), step):
        events += live.feed(pcm[i:i + step])
    return events


@pytest.mark.parametrize("rate", [24_000, 16_000])
def test_one_utterance_holds_the_whole_quote(audio_dir: Path, rate: int) -> None:
    speech = pcm16(audio_dir / "jfk.flac", rate)
    live = LiveAudio(rate=rate, vad=VadSettings(silence_duration_ms=1200))
    events = _feed(live, speech + bytes(rate * 2 * 3 // 2))
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]
    started, stopped = events
    assert isinstance(started, SpeechStarted)
    assert isinstance(stopped, SpeechStopped)
    assert started.audio_start_ms < 500  # JFK starts speaking at once
    # The utterance holds all the speech (plus the silence that ended it), not more than was sent.
    assert len(speech) <= len(stopped.audio) + rate * 2 // 2
    assert stopped.audio_end_ms <= len(speech) * 1000 // (rate * 2) + 1500


def test_pauses_cut_utterances_and_silence_or_a_click_is_no_speech(audio_dir: Path) -> None:
    speech = pcm16(audio_dir / "jfk.flac", 24_000)
    utterances = [e for e in _feed(LiveAudio(rate=24_000, vad=VadSettings()), speech + bytes(48_000 * 3 // 2))
                  if isinstance(e, SpeechStopped)]
    assert len(utterances) >= 3  # JFK pauses between phrases for more than 500 ms
    # Each holds real speech besides the 500 ms of silence that ended it: the breath at the end of the
    # quote, a few frames over the threshold, is no utterance of its own.
    assert all(len(u.audio) >= 48_000 * (500 + 250) // 1000 for u in utterances), [len(u.audio) for u in utterances]

    click = np.zeros(24_000 * 2, dtype="<i2")
    click[24_000:24_000 + 1200] = (np.sin(np.arange(1200) / 3) * 20_000).astype("<i2")  # 50 ms
    assert _feed(LiveAudio(rate=24_000, vad=VadSettings()), bytes(24_000 * 2 * 3) + click.tobytes()) == []


def test_without_vad_the_client_commits_what_it_sent() -> None:
    live = LiveAudio(rate=24_000, vad=None)
    assert live.feed(b"\x01\x00" * 2400) == []
    assert live.buffered_ms == 100
    audio = live.commit()
    assert audio == b"\x01\x00" * 2400
    assert live.buffered_ms == 0
    with wave.open(BytesIO(pcm16_wav(audio, 24_000))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (24_000, 1, 2400)
    with pytest.raises(ValueError, match="even"):
        live.feed(b"\x01")
