"""Inbound media: the normalized request every platform builds, and decoding to 16 kHz mono float32.

Limits are enforced as early as the information allows: the declared size before download, the bytes
while downloading (the fetcher is handed the limit), the container's declared duration before decoding,
and the decoded length while decoding, so a small file that claims or expands to hours stops early.

Media is opened only as the containers chats and the API deliver (ACCEPTED_FORMATS). FFmpeg knows
hundreds more, and some of them read other inputs: a concat or HLS playlist names local files, an SDP
description makes it listen on a UDP port, an MP4 data reference points at another file. An upload in one
of those, or in any format outside the list, is refused before anything is read beyond its own bytes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import av
import numpy as np

from .errors import MediaTooLarge, MediaTooLong, NoAudioTrack, UnacceptedFormat, UnreadableMedia

SAMPLE_RATE = 16_000
log = logging.getLogger(__name__)

ACCEPTED_FORMATS: Mapping[str, str] = MappingProxyType({
    "ogg": "Ogg",  # Opus and Vorbis: Telegram, WhatsApp and Discord voice messages
    "mp3": "MP3",
    "wav": "WAV",
    "flac": "FLAC",
    "mov": "MP4/M4A/MOV",  # also 3GP: Telegram video notes, iOS recordings
    "matroska": "WebM/Matroska",  # browser recordings
    "aac": "AAC",  # raw ADTS
    "amr": "AMR",  # older phones' voice memos
    "caf": "CAF",  # iMessage audio messages
    "aiff": "AIFF",
})
"""FFmpeg demuxer names (one name of each demuxer's list: "mov" stands for "mov,mp4,m4a,3gp,3g2,mj2"),
and what a person is told they may send."""

_CONTAINER_OPTIONS = {
    # FFmpeg still probes the content to pick the demuxer, then refuses one outside the list; nested
    # inputs inherit both lists.
    "format_whitelist": ",".join(ACCEPTED_FORMATS),
    # The upload itself arrives through Python IO, never a protocol; a demuxer that asks for a URL (a
    # playlist entry, an RTP socket) gets a name no protocol has.
    "protocol_whitelist": "none",
    "enable_drefs": "0",  # MP4/MOV: never follow a data reference to another file (FFmpeg's default)
    "use_absolute_path": "0",
}

Fetch = Callable[[int], Awaitable[bytes]]
"""Downloads the media; it is handed the byte limit and raises MediaTooLarge past it."""


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """One piece of media someone asked to have transcribed, whatever platform it came from."""

    platform: str
    """"telegram", "discord", "slack", "http", "cli"."""
    chat_id: str
    """Where the answer goes; the unit of fairness between chats."""
    user_id: str
    """Who asked; the unit of rate limiting."""
    fetch: Fetch
    kind: str = "audio"
    """voice, audio, video, video_note or document: shown to users, never trusted for decoding."""
    mime_type: str | None = None
    size_bytes: int | None = None
    duration_hint_s: float | None = None
    file_name: str | None = None
    platform_file_id: str | None = None
    """A stable id of the file on its platform (Telegram file_unique_id): answers repeats from the cache."""
    reference: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Opaque, JSON-serializable platform ids to fetch the media and reply again after a restart."""
    sender_language: str | None = None
    """The sender's client language as the platform reports it ("de", "pt-BR"); None where it says none. A
    hint for the language of a short clip detection is unsure of (core/language_choice.py)."""
    replies: str | None = None
    """The language the bot's own words take for this request (core/i18n.py), chosen by the platform's
    adapter from the conversation's setting and the sender's app language; None = English. Journaled, so a
    status or an error shown after a restart is in the same language."""


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    samples: np.ndarray
    """float32 mono at SAMPLE_RATE."""
    truncated: bool = False
    """Decoding stopped at broken data: these are the samples before it."""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def check_declared_size(size_bytes: int | None, limit_bytes: int) -> None:
    if size_bytes is not None and size_bytes > limit_bytes:
        raise MediaTooLarge(size_bytes, limit_bytes)


def check_declared_duration(duration_s: float | None, limit_s: float) -> None:
    if duration_s is not None and duration_s > limit_s:
        raise MediaTooLong(duration_s, limit_s)


def decode_audio(data: bytes, *, max_duration_s: float) -> DecodedAudio:
    """Decode the first audio track of `data` (any container PyAV knows) to 16 kHz mono float32."""
    if not data:
        raise UnreadableMedia("empty file")
    container, stream = _open_audio(data)
    with container:
        declared = _declared_duration(container, stream)
        check_declared_duration(declared, max_duration_s)
        decoded = _decode_stream(container, stream, max_duration_s)
        exact = declared if _declares_exact_duration(container, data) else None
    if not decoded.truncated and (_ogg_cut_short(data) or _wav_cut_short(data) or _short_of(decoded, exact)):
        return DecodedAudio(decoded.samples, truncated=True)
    return decoded


MAX_CHANNELS = 8
"""More channels than this are mixed down as always (surround film tracks, not one voice per channel)."""
_CHANNEL_NAMES = {"FL": "Left", "FR": "Right"}


@dataclass(frozen=True, slots=True)
class ChannelAudio:
    """The channels of a recording kept apart (for speakers by channel: core/speakers/channels.py)."""

    samples: np.ndarray
    """float32, shape (channels, n), at SAMPLE_RATE."""
    names: tuple[str, ...]
    """Each channel as a person names it: "Left", "Right", or "Channel 3"."""
    truncated: bool = False


def decode_channels(data: bytes, *, max_duration_s: float) -> ChannelAudio | None:
    """Each channel of the first audio track at 16 kHz, under the same limits as decode_audio; None for mono
    (or more than MAX_CHANNELS). Only asked for when speakers are wanted: the usual path decodes once, to mono."""
    if not data:
        raise UnreadableMedia("empty file")
    container, stream = _open_audio(data)
    with container:
        layout = stream.layout
        if not 2 <= len(layout.channels) <= MAX_CHANNELS:
            return None
        check_declared_duration(_declared_duration(container, stream), max_duration_s)
        decoded = _decode_stream(container, stream, max_duration_s, layout=layout)
    if len(layout.channels) == 2:  # stereo, whether or not the file says so (a WAV may declare no layout)
        names: tuple[str, ...] = ("Left", "Right")
    else:
        names = tuple(_CHANNEL_NAMES.get(c.name, f"Channel {i}") for i, c in enumerate(layout.channels, start=1))
    return ChannelAudio(decoded.samples, names, decoded.truncated)


def _declares_exact_duration(container: av.container.InputContainer, data: bytes) -> bool:
    """Containers whose header states the real length, so a shorter decode means a cut download.

    Not MP3 without a VBR header (FFmpeg estimates from the bitrate), nor Matroska video (the segment
    duration is the video's; the audio may end earlier).
    """
    name = container.format.name
    if "mov" in name:
        return True
    if "matroska" in name:
        return not container.streams.video
    if name == "mp3":
        return _mp3_vbr_header(data)
    return False


def _mp3_vbr_header(data: bytes) -> bool:
    start = 0
    if data.startswith(b"ID3") and len(data) >= 10:  # skip the ID3v2 tag (syncsafe size)
        start = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | data[9] & 0x7F)
    first_frame = data[start : start + 200]
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


def _short_of(decoded: DecodedAudio, declared_s: float | None) -> bool:
    return declared_s is not None and decoded.duration_s < declared_s - max(1.0, 0.1 * declared_s)


def probe_duration(data: bytes) -> float | None:
    """The duration the container declares, without decoding (None when it declares none).

    Raises the same errors as decode_audio for files that cannot be opened or have no audio, so that
    they are answered at once instead of waiting for a transcription slot.
    """
    container, stream = _open_audio(data)
    with container:
        return _declared_duration(container, stream)


def _open_audio(data: bytes) -> tuple[av.container.InputContainer, av.audio.AudioStream]:
    """The container and its first audio stream; typed errors for what is not media or has no audio."""
    try:
        container = av.open(
            io.BytesIO(data), mode="r", metadata_errors="ignore",
            container_options=_CONTAINER_OPTIONS, io_open=_refuse_second_input,
        )
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        # No demuxer recognised the bytes, or the one that did is outside the list.
        raise UnacceptedFormat(", ".join(ACCEPTED_FORMATS.values()), f"cannot open container: {exc}") from exc
    if not container.streams.audio:
        kinds = [s.type for s in container.streams]
        container.close()
        raise NoAudioTrack(f"streams: {kinds}")
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # a codec id FFmpeg has no decoder for (a damaged header says so)
        container.close()
        raise UnreadableMedia("the audio track's codec has no decoder")
    return container, stream


def _refuse_second_input(url: str, flags: int, options: dict[str, str]) -> None:
    """FFmpeg's hook for a demuxer opening another input (HLS segments, MP4 data references): never.

    The lists above already keep such demuxers out; this is the second lock. PyAV re-raises the error
    from the FFmpeg call that asked, so it reaches the caller as the user's sentence.
    """
    raise UnreadableMedia(f"the container asked to open another input: {url[:200]!r}")


def _declared_duration(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode_stream(
    container: av.container.InputContainer, stream: av.audio.AudioStream, max_duration_s: float,
    layout: str | av.AudioLayout = "mono",
) -> DecodedAudio:
    """The stream at SAMPLE_RATE: mono (samples of shape (n,)), or planar in `layout` (shape (channels, n))."""
    # Threaded decoding of many tiny audio frames costs more than it saves.
    stream.codec_context.thread_type = "NONE"
    planar = layout != "mono"
    resampler = av.AudioResampler(format="fltp" if planar else "flt", layout=layout, rate=SAMPLE_RATE)
    max_samples = int(max_duration_s * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    truncated = False
    try:
        for frame in container.decode(stream):
            # Check before resampling: one frame of a stream that claims 1 Hz expands a thousandfold.
            if total + frame.samples * SAMPLE_RATE / (frame.sample_rate or SAMPLE_RATE) > max_samples + 1:
                raise MediaTooLong(None, max_duration_s)
            for out in resampler.resample(frame):
                total += _append(chunks, out, planar)
            if total > max_samples:
                raise MediaTooLong(None, max_duration_s)
        for out in resampler.resample(None):
            total += _append(chunks, out, planar)
    except (av.FFmpegError, EOFError, ValueError) as exc:
        if total == 0:
            raise UnreadableMedia(f"decoding failed: {exc}") from exc
        log.info("decoding stopped after %.1f s of audio: %s", total / SAMPLE_RATE, exc)
        truncated = True
    if total == 0:
        raise UnreadableMedia("no audio frames")
    if total > max_samples:
        raise MediaTooLong(total / SAMPLE_RATE, max_duration_s)
    return DecodedAudio(np.concatenate(chunks, axis=-1).astype(np.float32, copy=False), truncated=truncated)


def _ogg_cut_short(data: bytes) -> bool:
    """An Ogg stream whose last page is incomplete or lacks end-of-stream: a download cut short.

    FFmpeg's Ogg demuxer drops a partial last page silently, so decoding alone cannot tell.
    """
    if not data.startswith(b"OggS"):
        return False
    last = data.rfind(b"OggS")
    if last + 27 > len(data):
        return True
    segments = data[last + 26]
    page_end = last + 27 + segments + sum(data[last + 27 : last + 27 + segments])
    end_of_stream = bool(data[last + 5] & 0x04)
    return page_end > len(data) or not end_of_stream


def _wav_cut_short(data: bytes) -> bool:
    """A WAV whose data chunk declares more bytes than the file holds (FFmpeg quietly reads what is there)."""
    if not (data.startswith(b"RIFF") and data[8:12] == b"WAVE"):
        return False
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            streamed = size == 0 or size >= 0xFFFFFFF0  # writers that could not seek back leave these
            return not streamed and offset + 8 + size > len(data)
        offset += 8 + size + (size & 1)
    return False


def _append(chunks: list[np.ndarray], frame: av.AudioFrame, planar: bool = False) -> int:
    array = frame.to_ndarray()  # packed mono: (1, n); planar: (channels, n)
    chunks.append(array if planar else array.reshape(-1))
    return array.shape[-1]
