"""Decoding what the platforms send to 16 kHz mono float32, and the clear errors for what cannot be."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from chatscribe.core.errors import ChatscribeError, MediaTooLong, NoAudioTrack, UnacceptedFormat, UnreadableMedia
from chatscribe.core.media import SAMPLE_RATE, decode_audio, probe_duration

HOUR = 3600.0
JFK_FILES = ["jfk_voice.ogg", "jfk.m4a", "jfk.webm", "jfk_video_note.mp4", "jfk.flac"]


@pytest.mark.parametrize("name", JFK_FILES)
def test_platform_containers_decode_to_16k_mono_float32(name: str, audio: Callable[[str], bytes]) -> None:
    decoded = decode_audio(audio(name), max_duration_s=HOUR)
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.ndim == 1
    assert decoded.duration_s == pytest.approx(11.0, abs=0.1)
    assert not decoded.truncated
    # real speech, not a buffer of zeros: loud enough and within the float range Whisper expects
    assert 0.01 < float(np.sqrt(np.mean(decoded.samples**2))) < 1.0


@pytest.mark.parametrize("name", ["random_bytes.ogg", "not_audio.ogg"])
def test_files_that_are_not_media_raise_unreadable_with_a_user_sentence(
    name: str, audio: Callable[[str], bytes]
) -> None:
    with pytest.raises(UnreadableMedia) as caught:
        decode_audio(audio(name), max_duration_s=HOUR)
    assert_user_sentence(caught.value)
    assert "format I accept (Ogg, MP3," in caught.value.user_message


def test_empty_file_is_unreadable() -> None:
    with pytest.raises(UnreadableMedia) as caught:
        decode_audio(b"", max_duration_s=HOUR)
    assert_user_sentence(caught.value)


def test_truncated_voice_note_gives_the_speech_that_is_there_flagged(audio: Callable[[str], bytes]) -> None:
    decoded = decode_audio(audio("truncated_voice.ogg"), max_duration_s=HOUR)
    assert decoded.truncated
    assert 2.0 < decoded.duration_s < 11.0


def test_ogg_whose_last_page_claims_five_hours_is_too_long(audio: Callable[[str], bytes]) -> None:
    data = _with_last_granule(audio("jfk_voice.ogg"), 48_000 * 5 * 3600)  # Opus granules are 48 kHz
    with pytest.raises(MediaTooLong) as caught:
        decode_audio(data, max_duration_s=HOUR)
    assert caught.value.duration_s == pytest.approx(5 * HOUR)
    assert_user_sentence(caught.value)
    assert "5.0 h" in caught.value.user_message
    assert "60 min" in caught.value.user_message


def test_wav_whose_header_says_one_sample_per_second_is_too_long() -> None:
    # 40 kB of samples at a declared 1 Hz: 5.5 hours, 1.3 GB once resampled to 16 kHz float32.
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(1)
        wav.writeframes(np.zeros(20_000, dtype=np.int16).tobytes())
    with pytest.raises(MediaTooLong) as caught:
        decode_audio(buffer.getvalue(), max_duration_s=HOUR)
    assert caught.value.duration_s is not None
    assert caught.value.duration_s > HOUR


@pytest.mark.parametrize(
    ("declared_bytes", "truncated"), [(1_000_000_000, True), (0xFFFFFFFF, False)], ids=["1GB", "streamed"]
)
def test_wav_whose_data_chunk_claims_more_decodes_what_it_holds(declared_bytes: int, truncated: bool) -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes((np.sin(np.arange(SAMPLE_RATE) / 5) * 8000).astype(np.int16).tobytes())
    data = bytearray(buffer.getvalue())
    struct.pack_into("<I", data, data.find(b"data") + 4, declared_bytes)
    decoded = decode_audio(bytes(data), max_duration_s=HOUR)
    assert decoded.duration_s == pytest.approx(1.0, abs=0.01)
    # a concrete size past the end is a cut download; 0xFFFFFFFF is how a live writer says "unknown"
    assert decoded.truncated is truncated


@pytest.mark.parametrize("name", ["jfk.webm", "jfk.flac", "multilingual.mp3", "stereo_diarization.wav"])
def test_downloads_cut_in_half_are_flagged_truncated(name: str, audio: Callable[[str], bytes]) -> None:
    data = audio(name)
    full = decode_audio(data, max_duration_s=HOUR)
    half = decode_audio(data[: len(data) // 2], max_duration_s=HOUR)
    assert not full.truncated
    assert half.truncated
    assert 0.3 * full.duration_s < half.duration_s < 0.7 * full.duration_s


@pytest.mark.parametrize("name", ["jfk.m4a", "jfk_video_note.mp4"])
def test_mp4_cut_before_its_index_is_unreadable(name: str, audio: Callable[[str], bytes]) -> None:
    data = audio(name)
    with pytest.raises(UnreadableMedia) as caught:
        decode_audio(data[: len(data) // 2], max_duration_s=HOUR)
    assert_user_sentence(caught.value)


def test_stream_without_declared_duration_is_stopped_while_decoding() -> None:
    data = _streamed_webm(seconds=20)
    with av.open(io.BytesIO(data)) as container:  # like a browser recording: no duration in the header
        assert container.duration is None
        assert container.streams.audio[0].duration is None
    with pytest.raises(MediaTooLong) as caught:
        decode_audio(data, max_duration_s=5)
    assert_user_sentence(caught.value)
    assert decode_audio(data, max_duration_s=60).duration_s == pytest.approx(20.0, abs=0.1)


def test_video_without_an_audio_track_raises_no_audio_track() -> None:
    with pytest.raises(NoAudioTrack) as caught:
        decode_audio(_silent_film(), max_duration_s=HOUR)
    assert_user_sentence(caught.value)
    assert "no audio" in caught.value.user_message


def test_stereo_is_downmixed_to_one_channel_with_both_speakers(audio: Callable[[str], bytes]) -> None:
    data = audio("stereo_diarization.wav")
    mono = decode_audio(data, max_duration_s=HOUR).samples
    assert mono.ndim == 1
    left, right = _channels(data)
    n = min(len(mono), len(left))
    assert n == pytest.approx(5 * SAMPLE_RATE, abs=SAMPLE_RATE // 10)
    # the two speakers are independent signals; the mono mix must carry each of them
    assert abs(np.corrcoef(left[:n], right[:n])[0, 1]) < 0.2
    assert np.corrcoef(mono[:n], left[:n])[0, 1] > 0.5
    assert np.corrcoef(mono[:n], right[:n])[0, 1] > 0.5


ALL_SHARED_SPEECH = [*JFK_FILES, "multilingual.mp3", "multilingual_voice.ogg", "hotwords.mp3",
                     "stereo_diarization.wav"]


@pytest.mark.parametrize("name", ALL_SHARED_SPEECH)
def test_every_shared_recording_opens_within_the_accepted_formats(name: str, audio: Callable[[str], bytes]) -> None:
    decoded = decode_audio(audio(name), max_duration_s=HOUR)
    assert decoded.duration_s > 3.0
    assert 0.01 < float(np.sqrt(np.mean(decoded.samples**2))) < 1.0


@pytest.fixture
def secret_beside_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audio: Callable[[str], bytes]) -> Path:
    """A recording in the server's working directory that no upload may make us read."""
    secret = tmp_path / "local_secret.ogg"
    secret.write_bytes(audio("jfk_voice.ogg"))
    (tmp_path / "local_secret.m4a").write_bytes(audio("jfk.m4a"))
    monkeypatch.chdir(tmp_path)
    return secret


ID3_HEADER = b"ID3\x04\x00\x00\x00\x00\x00\x00"  # an empty ID3v2 tag: FFmpeg probes what follows it


def _playlists(secret: Path) -> dict[str, bytes]:
    concat = b"ffconcat version 1.0\nfile local_secret.ogg\n"
    return {
        "concat relative": concat,
        "concat absolute": f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
        "concat file: url": f"ffconcat version 1.0\nfile 'file:{secret}'\n".encode(),
        "concat subfile protocol": f"ffconcat version 1.0\nfile 'subfile,,start,0,end,0,,:{secret}'\n".encode(),
        "concat inside an ID3 tag": ID3_HEADER + concat,
        "hls relative": b"#EXTM3U\n#EXT-X-TARGETDURATION:11\n#EXTINF:11,\nlocal_secret.ogg\n#EXT-X-ENDLIST\n",
        "hls file: url": f"#EXTM3U\n#EXTINF:11,\nfile:{secret}\n#EXT-X-ENDLIST\n".encode(),
        "hls inside an ID3 tag": ID3_HEADER + b"#EXTM3U\n#EXTINF:11,\nlocal_secret.ogg\n",
    }


@pytest.mark.parametrize("kind", list(_playlists(Path("x"))))
def test_playlists_naming_a_local_file_are_refused(kind: str, secret_beside_cwd: Path) -> None:
    data = _playlists(secret_beside_cwd)[kind]
    with pytest.raises(UnreadableMedia) as caught:
        decode_audio(data, max_duration_s=HOUR)
    assert_user_sentence(caught.value)
    assert "isn't audio or video in a format I accept" in caught.value.user_message
    with pytest.raises(UnreadableMedia):
        probe_duration(data)


def test_mp4_whose_data_reference_names_a_local_file_is_not_followed(
    secret_beside_cwd: Path, audio: Callable[[str], bytes]
) -> None:
    # jfk.m4a with its own samples zeroed and its track's data moved to a Mac alias naming the secret:
    # any speech decoded from it can only come from the other file.
    data = _with_alias_data_reference(audio("jfk.m4a"), secret_beside_cwd.with_suffix(".m4a"))
    with av.open(io.BytesIO(data), options={"enable_drefs": "1"}) as followed:  # proof the reference is real
        assert _rms(np.concatenate([f.to_ndarray().reshape(-1) for f in followed.decode(audio=0)])) > 0.05
    try:
        decoded = decode_audio(data, max_duration_s=HOUR)
    except UnreadableMedia as refused:
        assert_user_sentence(refused)
    else:
        assert _rms(decoded.samples) < 0.001


def test_network_stream_description_is_refused_without_listening() -> None:
    # An SDP file makes FFmpeg bind a UDP port and decode whatever RTP arrives there.
    port = _free_udp_port()
    sdp = (f"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {port} RTP/AVP 0\r\n").encode()
    with _rtp_tone_to(port):
        started = time.monotonic()
        with pytest.raises(UnreadableMedia) as caught:
            decode_audio(sdp, max_duration_s=2)
    assert_user_sentence(caught.value)
    assert time.monotonic() - started < 5


def test_image_is_refused_as_a_format_outside_the_list() -> None:
    with av.open(buffer := io.BytesIO(), "w", format="image2pipe") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    with pytest.raises(UnacceptedFormat) as caught:
        decode_audio(buffer.getvalue(), max_duration_s=HOUR)
    assert_user_sentence(caught.value)
    assert "WebM/Matroska" in caught.value.user_message


def assert_user_sentence(error: ChatscribeError) -> None:
    message = error.user_message
    assert message[:1].isupper(), message
    assert message.endswith("."), message
    for internal in ("Errno", "Traceback", "av.", "FFmpeg", "<none>", "Invalid data"):
        assert internal not in message, message


def _with_last_granule(data: bytes, granule: int) -> bytes:
    """Rewrite the granule position of the last Ogg page (the demuxer reads the duration from it)."""
    page_at = data.rfind(b"OggS")
    out = bytearray(data)
    struct.pack_into("<q", out, page_at + 6, granule)
    struct.pack_into("<I", out, page_at + 22, 0)
    struct.pack_into("<I", out, page_at + 22, _ogg_crc(bytes(out[page_at:])))
    return bytes(out)


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


class _Pipe:
    """A write-only sink: the muxer cannot seek back to write the duration, as in a live recording."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def _streamed_webm(seconds: float) -> bytes:
    pipe = _Pipe()
    with av.open(pipe, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        t = np.arange(int(seconds * 48_000)) / 48_000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        frame.sample_rate = 48_000
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=48_000)
        for piece in resampler.resample(frame):
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return bytes(pipe.data)


def _silent_film() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(10):
            image = np.full((64, 64, 3), index * 20, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _channels(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
        frames = container.decode(audio=0)
        planes = [out.to_ndarray() for frame in frames for out in resampler.resample(frame)]
    both = np.concatenate(planes, axis=1)
    return both[0], both[1]


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def _with_alias_data_reference(data: bytes, target: Path) -> bytes:
    """The MP4 with its track's data reference replaced by a Mac alias to `target`, its own samples zeroed.

    The alias says "one level up, one level down": FFmpeg resolves that to the target's file name in the
    directory of the input, the working directory for an in-memory upload.
    """
    dref_at = data.find(b"dref") - 4
    old_size = struct.unpack_from(">I", data, dref_at)[0]
    path = str(target).encode()
    fixed = bytes(10 + 1 + 27 + 12 + 1 + 63 + 16) + struct.pack(">HH", 1, 1) + bytes(16)
    records = struct.pack(">hH", 2, len(path)) + path + bytes(len(path) % 2) + struct.pack(">hH", -1, 0)
    alias = b"alis" + bytes(4) + fixed + records
    dref = b"dref" + struct.pack(">II", 0, 1) + struct.pack(">I", len(alias) + 4) + alias
    dref = struct.pack(">I", len(dref) + 4) + dref
    delta = len(dref) - old_size
    out = bytearray(data[:dref_at] + dref + data[dref_at + old_size :])
    start, end = 0, len(data)  # grow every box on the way down to the dref (the moov follows the mdat)
    while True:
        for at, size, kind in _boxes(data, start, end):
            if at < dref_at < at + size and kind in (b"moov", b"trak", b"mdia", b"minf", b"dinf"):
                struct.pack_into(">I", out, at, size + delta)
                start, end = at + 8, at + size
                break
        else:
            break
    mdat_at = data.find(b"mdat") - 4
    mdat_size = struct.unpack_from(">I", data, mdat_at)[0]
    out[mdat_at + 8 : mdat_at + mdat_size] = bytes(mdat_size - 8)
    return bytes(out)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, bytes]]:
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        yield at, size, kind
        at += max(size, 8)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _rtp_tone_to(port: int) -> Iterator[None]:
    """Sends a 440 Hz PCMU tone as RTP to 127.0.0.1:port in real time while the block runs (at most 30 s)."""
    stop = threading.Event()
    sender = threading.Thread(target=_send_tone, args=(port, stop), daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()


def _send_tone(port: int, stop: threading.Event) -> None:
    tone = np.sin(2 * np.pi * 440 * np.arange(160) / 8000)
    payload = bytes((0x7F - int(v * 0x3F)) & 0xFF for v in tone)  # rough mu-law: audible, not silence
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for seq in range(1500):  # 20 ms packets: 30 s
            with contextlib.suppress(OSError):  # nobody listening is the expected case
                out.sendto(struct.pack(">BBHII", 0x80, 0, seq, seq * 160, 0x1234) + payload, ("127.0.0.1", port))
            if stop.wait(0.02):  # real-time pacing of the stream, not synchronisation
                return
