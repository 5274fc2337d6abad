"""Cross-request batching with the real models on the shared audio: every note keeps its own words."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from chatscribe.core.engines.batching import Batcher, Clip
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.packing import PACK_LIMIT_S, Prepared, Window, pack
from chatscribe.core.errors import UnreadableMedia
from chatscribe.core.jobs.runner import LocalRunner, Work
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.metrics import Metrics
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import normalize
from chatscribe.core.transcript import Transcript
from tests.audio_tools import to_wav, variants
from tests.waiting import until

HOUR = 3600.0
GERMAN_FROM_S = 31.0  # multilingual.mp3 switches to German at about 0:30
TIMESTAMP_TOLERANCE_S = 0.5


@pytest.fixture(scope="module")
def clip(audio: Callable[[str], bytes]) -> Callable[..., np.ndarray]:
    def cut(name: str, start_s: float = 0.0, end_s: float | None = None) -> np.ndarray:
        samples = decode_audio(audio(name), max_duration_s=HOUR).samples
        return samples[int(start_s * SAMPLE_RATE) : None if end_s is None else int(end_s * SAMPLE_RATE)]

    return cut


SOURCES = {"jfk": {"americans", "country", "ask"}, "hotwords": {"folder", "again"},
           "license": {"permission", "software", "granted"}, "silence": set()}
"""Words only one recording says: finding one in another recording's note means a word moved."""


@pytest.fixture(scope="module")
def notes(clip: Callable[..., np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """Short notes from three recordings, and one of silence: (source, audio)."""
    return [
        ("jfk", clip("jfk.flac", 3.0)),  # "ask not what your country can do for you, ..."
        ("hotwords", clip("hotwords.mp3")),
        ("jfk", clip("jfk.flac")),
        ("license", clip("multilingual.mp3", 0.0, 9.5)),
        ("jfk", clip("jfk_voice.ogg")),
        ("silence", clip("silence_10s.ogg")),
    ]


def _words(transcript: Transcript) -> list[str]:
    return normalize(transcript.text).split()


def _keeps_its_own_words(index: int, source: str, mine: Transcript, single: Transcript) -> set[str] | None:
    """Asserts a note batched keeps the words of its recording it says alone (a word moved to another note
    would be missing here), and says nothing where alone it says nothing; those words, or None then."""
    if not single.segments:
        assert not mine.segments, f"note {index}: words where nobody speaks: {mine.text}"
        return None
    own = SOURCES[source] & set(_words(single))
    assert own <= set(_words(mine)), f"note {index} ({source}) lost {own - set(_words(mine))}: {mine.text}"
    return own


def _edges(transcript: Transcript) -> tuple[float, float]:
    return transcript.segments[0].start, transcript.segments[-1].end


def _together_and_alone(
    engine: FasterWhisperEngine, strategy: str, notes: list[tuple[str, np.ndarray]]
) -> tuple[Batcher, list[Transcript], list[Transcript]]:
    options = TranscribeOptions(word_timestamps=True)
    # The engine's own beam: what is compared is the sharing of windows, not the decoding strategy.
    batcher = Batcher(engine, strategy=strategy, beam_size=engine.beam_size)  # type: ignore[arg-type]
    together = batcher.transcribe([Clip(audio, options) for _, audio in notes])
    assert all(isinstance(t, Transcript) for t in together)
    # Alone on the plain path (whole 30 s windows), which batched windows decode as.
    return batcher, together, [engine.transcribe_plain(audio, options) for _, audio in notes]  # type: ignore[return-value]


def test_batched_notes_get_exactly_the_words_and_times_they_get_alone(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    batcher, together, alone = _together_and_alone(tiny_engine, "batched", notes)
    for index, (mine, single) in enumerate(zip(together, alone, strict=True)):
        assert _words(mine) == _words(single), f"note {index}"
        assert mine.model == batcher.model_id or not mine.segments, f"note {index} fell back to going alone"
        mine_words = [w for s in mine.segments for w in s.words]
        single_words = [w for s in single.segments for w in s.words]
        for a, b in zip(mine_words, single_words, strict=True):
            assert abs(a.start - b.start) <= TIMESTAMP_TOLERANCE_S
            assert abs(a.end - b.end) <= TIMESTAMP_TOLERANCE_S


def test_packed_notes_keep_their_own_words_at_their_own_times(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    """The batcher is handed these six notes together, as the runner hands it one conversation's notes
    (notes of different conversations never reach one packed call: the tests below).

    Packing's own bookkeeping is what is asserted: every word goes back to the note it was spoken in, at
    its time, and nothing is heard in silence. Within one conversation a window-mate's words may still
    colour a note's decoding (Whisper reads them as context: "ComfyUI" heard as "country" after JFK's
    note); that is allowed there, not asserted either way, and bench/bench_batching.py counts it."""
    batcher, together, alone = _together_and_alone(tiny_engine, "packed", notes)
    for index, ((source, _), mine, single) in enumerate(zip(notes, together, alone, strict=True)):
        own = _keeps_its_own_words(index, source, mine, single)
        if own is None:
            continue
        assert own, f"note {index}: alone it says none of its recording's words: {single.text}"
        for mine_edge, single_edge in zip(_edges(mine), _edges(single), strict=True):
            assert abs(mine_edge - single_edge) <= TIMESTAMP_TOLERANCE_S, f"note {index}"
    packed = [t for t in together if t.model == batcher.model_id and t.segments]
    assert len(packed) >= 3, "packing answered almost nothing: every note fell back to going alone"


def test_packing_fills_windows_in_order_with_silence_between_notes() -> None:
    windows = pack([3.0, 8.0, 4.0, 11.0, 4.5, 29.0], gap_s=2.0)
    assert windows == [[(0, 0.0), (1, 5.0), (2, 15.0), (4, 21.0)], [(3, 0.0)], [(5, 0.0)]]
    lengths = [3.0, 8.0, 4.0, 11.0, 4.5, 29.0]
    for window in windows:
        last_index, last_offset = window[-1]
        assert last_offset + lengths[last_index] <= PACK_LIMIT_S


def test_words_go_to_the_note_whisper_decoded_them_in_even_when_their_aligned_times_smear_over_a_gap() -> None:
    first = Prepared(0, np.zeros(11 * SAMPLE_RATE, np.float32), 11.0, None)
    second = Prepared(1, np.zeros(11 * SAMPLE_RATE, np.float32), 11.0, None)
    window = Window([(first, 0.0), (second, 13.0)])

    def word(start: float, end: float) -> dict[str, float]:
        return {"start": start, "end": end}

    # Decoded from 12.94 s: the second note's, though cross-attention put its first word at 10.4-11.5 s.
    smeared = [word(10.38, 11.5), word(11.5, 13.8), word(13.8, 14.2)]
    assert window.owners(smeared, (12.94, 20.28)) == [second, second, second]
    # A segment Whisper ran across the gap is split by the words' times; one in the gap joins its neighbours.
    across = [word(9.0, 9.5), word(10.6, 11.6), word(12.8, 13.4), word(13.4, 13.9)]
    assert window.owners(across, (8.9, 14.0)) == [first, first, second, second]


def test_notes_in_different_languages_each_keep_their_language(
    base_engine: FasterWhisperEngine, clip: Callable[..., np.ndarray]
) -> None:
    """Undeclared languages are detected per note and packed per language; declared ones are never mixed."""
    english, german = clip("jfk.flac"), clip("multilingual.mp3", GERMAN_FROM_S, GERMAN_FROM_S + 9)
    license_en, german_more = clip("multilingual.mp3", 0.0, 9.5), clip("multilingual.mp3", 41.0, 50.0)
    batcher = Batcher(base_engine, strategy="packed")
    detected = batcher.transcribe([Clip(a, TranscribeOptions()) for a in (english, german, license_en, german_more)])
    declared = batcher.transcribe([
        Clip(english, TranscribeOptions(language="en")), Clip(german, TranscribeOptions(language="de")),
        Clip(english, TranscribeOptions(language="en")),
    ])
    for results in (detected, declared):
        assert isinstance(results[0], Transcript)
        assert isinstance(results[1], Transcript)
        assert (results[0].language, results[1].language) == ("en", "de")
        assert "americans" in _words(results[0])
        assert "software" in _words(results[1])
        assert not {"americans", "country"} & set(_words(results[1]))
    transcripts = [t for t in detected if isinstance(t, Transcript)]
    assert [t.language for t in transcripts] == ["en", "de", "en", "de"]
    assert all(t.model == batcher.model_id for t in transcripts), "a detected note fell back to going alone"
    assert "permission" in _words(transcripts[2])
    for english_note in (transcripts[0], transcripts[2]):
        assert not {"jedem", "der", "die"} & set(_words(english_note))
    assert isinstance(declared[2], Transcript)
    assert _words(declared[2]) == _words(declared[0])


def test_a_note_alone_is_detected_in_the_language_its_whole_window_gives(
    base_engine: FasterWhisperEngine, clip: Callable[..., np.ndarray]
) -> None:
    """Packing detects each note's language from a short encoder pass: the answer must not change."""
    clips = [clip("jfk.flac"), clip("hotwords.mp3"), clip("multilingual.mp3", 0.0, 9.5),
             clip("multilingual.mp3", GERMAN_FROM_S, GERMAN_FROM_S + 9), clip("multilingual.mp3", 41.0, 50.0),
             clip("multilingual.mp3", 50.0, 53.0)]
    short = base_engine.steps.languages_of(clips)
    whole = [base_engine.detect_language(c) for c in clips]
    assert [code for code, _ in short] == [code for code, _ in whole]
    for (_, mine), (_, theirs) in zip(short, whole, strict=True):
        assert abs(mine - theirs) <= 0.1
    [(restricted, _)] = base_engine.steps.languages_of(clips[3:4], among=("en", "fr"))  # German, but not allowed
    assert restricted in ("en", "fr")


async def test_a_batch_with_an_unreadable_file_answers_every_other_note(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes], notes: list[tuple[str, np.ndarray]]
) -> None:
    runner = LocalRunner(tiny_engine, slots=1, max_duration_s=HOUR, metrics=Metrics())
    options = TranscribeOptions()
    first = asyncio.ensure_future(runner.run(Work("a", to_wav(notes[2][1]), 11.0, options)))  # holds the slot
    batch = [  # one conversation's notes, which may share a packed window
        runner.run(Work("b", to_wav(notes[0][1]), 8.0, options, conversation="one")),
        runner.run(Work("c", audio("random_bytes.ogg"), 3.0, options, conversation="one")),
        runner.run(Work("d", to_wav(notes[1][1]), 4.0, options, conversation="one")),
    ]
    results = await asyncio.gather(first, *batch, return_exceptions=True)
    assert isinstance(results[2], UnreadableMedia)
    fellow, comfy = results[1], results[3]
    assert isinstance(fellow, Transcript)
    assert isinstance(comfy, Transcript)
    assert "country" in _words(fellow)
    assert "folder" in _words(comfy)
    assert fellow.model == comfy.model == runner.model_id, "the readable notes were transcribed as one batch"


async def test_a_burst_from_one_chat_does_not_keep_another_chat_out_of_the_batches(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    notes = variants(audio("jfk.flac"), 11, seconds=4)
    runner = LocalRunner(tiny_engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), max_batch=3)
    answered: list[str] = []

    async def send(chat: str, data: bytes) -> Transcript:
        transcript = await runner.run(Work(chat, data, 4.0, TranscribeOptions(), conversation=chat))
        answered.append(chat)
        return transcript

    # All eleven reach the scheduler in this order before the first transcription ends: A's first note
    # starts alone at once, the other nine of A's and then B's wait.
    sends = [send("A", data) for data in notes[:10]] + [send("B", notes[10])]
    transcripts = await asyncio.gather(*sends)
    assert answered.index("B") <= 3, f"B was not in the first batch after A's first note: {answered}"
    assert all("americans" in _words(t) for t in transcripts)


def test_each_note_gets_its_own_options_when_notes_with_different_options_arrive_together(
    tiny_engine: FasterWhisperEngine, clip: Callable[..., np.ndarray]
) -> None:
    hot, jfk = clip("hotwords.mp3"), clip("jfk.flac")
    vocabulary = TranscribeOptions(vocabulary="ComfyUI")
    plain = TranscribeOptions()
    words = TranscribeOptions(word_timestamps=True)
    batcher = Batcher(tiny_engine, strategy="packed")
    asked = [vocabulary, plain, words, vocabulary, plain, words]
    results = batcher.transcribe([Clip(audio, options) for audio, options in zip(
        [hot, hot, hot, jfk, jfk, jfk], asked, strict=True)])
    assert all(isinstance(r, Transcript) for r in results)
    transcripts: list[Transcript] = results  # type: ignore[assignment]
    assert transcripts[0].model == transcripts[1].model == transcripts[2].model == batcher.model_id, "not batched"
    assert "comfyui" in _words(transcripts[0])
    assert "comfyui" not in _words(transcripts[1]) + _words(transcripts[2])
    for options, transcript in zip(asked, transcripts, strict=True):
        has_words = any(s.words for s in transcript.segments)
        assert has_words == options.word_timestamps


def test_a_packed_note_left_with_one_smeared_word_is_done_again() -> None:
    from chatscribe.core.engines.packing import incomplete
    from chatscribe.core.transcript import Segment, Word

    note = Prepared(0, np.zeros(3 * SAMPLE_RATE, np.float32), 3.0, None)
    smeared = [Segment(0.0, 3.0, " and", words=(Word(0.0, 3.0, " and", 0.4),))]
    spoken = [Segment(0.0, 3.0, " And so my fellow Americans", words=tuple(
        Word(i * 0.6, i * 0.6 + 0.5, f" w{i}", 0.9) for i in range(5)))]
    assert incomplete(note, smeared)
    assert not incomplete(note, spoken)


def _runner(engine: FasterWhisperEngine, strategy: str, **kwargs: object) -> tuple[LocalRunner, list[tuple[str, ...]]]:
    """A runner recording the conversations of each batch it composes."""
    composed: list[tuple[str, ...]] = []
    runner = LocalRunner(engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), batch_window_s=0.0,
                         batching=strategy, batch_beam_size=engine.beam_size,  # type: ignore[arg-type]
                         on_batch=lambda works: composed.append(tuple(str(w.conversation) for w in works)),
                         **kwargs)  # type: ignore[arg-type]
    return runner, composed


async def _submitted_together(runner: LocalRunner, works: list[Work]) -> list[Transcript]:
    """Every work waits in the scheduler before any is served, so the batches formed do not depend on
    timing: the test holds the only slot until all are queued, then lets the scheduler compose."""
    async with runner.scheduler.turn("someone else", 1.0):
        runs = [asyncio.ensure_future(runner.run(work)) for work in works]
        await until(lambda: runner.scheduler.waiting == len(works), "every note queued")
    return list(await asyncio.gather(*runs))


def _jfk_and_comfy(notes: list[tuple[str, np.ndarray]], first: str, second: str) -> list[Work]:
    return [Work("chat-1", to_wav(notes[2][1]), 11.0, TranscribeOptions(), conversation=first),
            Work("chat-2", to_wav(notes[1][1]), 4.0, TranscribeOptions(), conversation=second)]


async def test_notes_of_different_conversations_are_never_packed_together(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    runner, composed = _runner(tiny_engine, "packed")
    jfk, comfy = await _submitted_together(runner, _jfk_and_comfy(notes, "telegram:1", "telegram:2"))
    assert sorted(composed) == [("telegram:1",), ("telegram:2",)], f"batches formed: {composed}"
    assert "country" in _words(jfk)
    assert "folder" in _words(comfy)
    assert not {"americans", "country", "ask"} & set(_words(comfy)), f"JFK's words in the other chat's: {comfy.text}"
    assert not {"folder", "again"} & set(_words(jfk))


async def test_notes_of_one_conversation_may_still_be_packed_together(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    runner, composed = _runner(tiny_engine, "packed")
    jfk, comfy = await _submitted_together(runner, _jfk_and_comfy(notes, "telegram:1", "telegram:1"))
    assert composed == [("telegram:1", "telegram:1")]
    assert jfk.model == comfy.model == runner.model_id, "not transcribed as one batch"
    assert "country" in _words(jfk)
    assert "folder" in _words(comfy)


async def test_a_single_tenant_may_allow_packing_across_conversations(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    runner, composed = _runner(tiny_engine, "packed", pack_across_conversations=True)
    jfk, comfy = await _submitted_together(runner, _jfk_and_comfy(notes, "http:alice", "http:bob"))
    assert [sorted(batch) for batch in composed] == [["http:alice", "http:bob"]]
    assert jfk.model == comfy.model == runner.model_id, "not transcribed as one batch"


async def test_batched_windows_may_mix_conversations_as_no_note_reads_another(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    """Batched: each note in its own window and decoding sequence, with only its options' prompt."""
    runner, composed = _runner(tiny_engine, "batched")
    jfk, comfy = await _submitted_together(runner, _jfk_and_comfy(notes, "slack:C1", "discord:42"))
    assert [sorted(batch) for batch in composed] == [["discord:42", "slack:C1"]]
    assert jfk.model == comfy.model == runner.model_id, "not transcribed as one batch"
    assert "country" in _words(jfk)
    assert "folder" in _words(comfy)
    assert not {"americans", "country", "ask"} & set(_words(comfy)), f"JFK's words in the other chat's: {comfy.text}"


def test_the_batch_key_names_the_conversation_only_where_notes_share_a_sequence(
    tiny_engine: FasterWhisperEngine,
) -> None:
    def key(runner: LocalRunner, conversation: str | None, **options: object) -> object:
        return runner.batch_key(Work("chat", b"", 4.0, TranscribeOptions(**options),  # type: ignore[arg-type]
                                     conversation=conversation))

    packed, _ = _runner(tiny_engine, "packed")
    assert key(packed, "telegram:1") != key(packed, "telegram:2")
    assert key(packed, "telegram:1") == key(packed, "telegram:1")
    assert key(packed, None) is None, "a note without a conversation must pack with nobody"
    assert key(packed, "a", task="translate") == key(packed, "b", task="translate"), "translation is not packed"
    batched, _ = _runner(tiny_engine, "batched")
    assert key(batched, "telegram:1") == key(batched, "telegram:2")


async def test_the_service_names_each_note_by_its_platform_and_chat(
    settings: object, tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    """The same chat id on two platforms is two conversations; the same chat twice is one."""
    from chatscribe.core.media import MediaRequest
    from chatscribe.core.service import TranscriptionService

    def request(platform: str, chat: str, data: bytes) -> MediaRequest:
        async def fetch(limit: int) -> bytes:
            return data

        return MediaRequest(platform=platform, chat_id=chat, user_id=chat, fetch=fetch, size_bytes=len(data))

    sent = [("telegram", "42", notes[2][1]), ("discord", "42", notes[1][1]), ("telegram", "42", notes[0][1])]
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:  # type: ignore[arg-type]
        runner, composed = _runner(tiny_engine, "packed")
        service.set_runner(runner)
        async with runner.scheduler.turn("someone else", 1.0):
            runs = [asyncio.ensure_future(service.transcribe(request(p, c, to_wav(a)), TranscribeOptions()))
                    for p, c, a in sent]
            await until(lambda: runner.scheduler.waiting == len(sent), "every note queued")
        jfk, comfy, fellow = await asyncio.gather(*runs)
    assert sorted(composed) == [("discord:42",), ("telegram:42", "telegram:42")], f"batches formed: {composed}"
    assert "folder" in _words(comfy)
    assert not {"americans", "country", "ask"} & set(_words(comfy))


# -- reduced windows (the trimmed strategy, and a lone note's shortcut) ---------------------------------


def test_a_reduced_window_has_the_frames_of_its_seconds(tiny_engine: FasterWhisperEngine,
                                                        notes: list[tuple[str, np.ndarray]]) -> None:
    from chatscribe.core.engines.batching import reduced_window_s
    from chatscribe.core.engines.decoding_steps import reduced_frames

    assert [reduced_frames(4.0), reduced_frames(45.0)] == [400, 3000]
    assert [reduced_window_s(2.0), reduced_window_s(12.0), reduced_window_s(29.0)] == [10.0, 14.0, 30.0]
    features = tiny_engine.steps.feature_windows([notes[1][1]], 10.0)
    whole = tiny_engine.steps.feature_windows([notes[1][1]])
    assert features.shape[-1] == 1000
    assert np.array_equal(features, whole[:, :, :1000]), "a reduced window is the start of the whole one"


def test_a_lone_short_note_through_a_reduced_window_keeps_its_words_and_times(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    batcher = Batcher(tiny_engine, strategy="trimmed")
    options = TranscribeOptions(word_timestamps=True)
    for index, (source, audio) in enumerate(notes[:5]):
        reduced = batcher.transcribe_reduced(audio, options)
        plain = tiny_engine.transcribe_plain(audio, options)
        assert reduced is not None, f"note {index}: the shortcut sent it back to the plain path"
        own = SOURCES[source] & set(_words(plain))
        assert own <= set(_words(reduced)), f"note {index} ({source}) lost {own - set(_words(reduced))}"
        foreign = set().union(*(words for other, words in SOURCES.items() if other != source))
        assert not foreign & set(_words(reduced)), f"note {index}: {reduced.text}"
        for mine_edge, plain_edge in zip(_edges(reduced), _edges(plain), strict=True):
            assert abs(mine_edge - plain_edge) <= TIMESTAMP_TOLERANCE_S, f"note {index}"
    silence = batcher.transcribe_reduced(notes[5][1], options)
    assert silence is not None
    assert not silence.segments, "words where nobody speaks"


def test_a_reduced_window_whose_result_fails_whispers_checks_goes_back_to_the_plain_path(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A window cut too close to the speech (0.3 s of margin, no minimum) makes tiny.en loop over
    hotwords.mp3 ("ComfyUI" again and again): the compression-ratio check catches it and the plain path
    answers, alone and in a batch, while the note beside it keeps its shortcut."""
    from chatscribe.core.engines import batching

    monkeypatch.setattr(batching, "REDUCED_MARGIN_S", 0.3)
    monkeypatch.setattr(batching, "REDUCED_MIN_S", 0.0)
    monkeypatch.setattr(batching, "REDUCED_GROUP", 1)  # each note in a window of its own length
    batcher = Batcher(tiny_engine, strategy="trimmed")
    hotwords, jfk = notes[1][1], notes[0][1]
    options = TranscribeOptions()
    with caplog.at_level("DEBUG", logger="chatscribe.core.engines.batching"):
        assert batcher.transcribe_reduced(hotwords, options) is None
    assert "back to the plain path: compression ratio" in caplog.text
    plain = tiny_engine.transcribe_plain(hotwords, options)
    assert "folder" in _words(plain)
    together = batcher.transcribe([Clip(hotwords, options), Clip(jfk, options)])
    assert isinstance(together[0], Transcript)
    assert isinstance(together[1], Transcript)
    assert together[0].model == tiny_engine.model_id, "the looping note was not sent to the plain path"
    assert _words(together[0]) == _words(plain)
    assert together[1].model == batcher.model_id, "the sound note lost its shortcut"
    assert "country" in _words(together[1])


def test_notes_in_reduced_windows_keep_their_own_words(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]]
) -> None:
    batcher, together, alone = _together_and_alone(tiny_engine, "trimmed", notes)
    for index, ((source, _), mine, single) in enumerate(zip(notes, together, alone, strict=True)):
        _keeps_its_own_words(index, source, mine, single)
    assert sum(t.model == batcher.model_id and bool(t.segments) for t in together) >= 3


def test_reduced_windows_may_mix_conversations_as_no_note_reads_another(tiny_engine: FasterWhisperEngine) -> None:
    runner, _ = _runner(tiny_engine, "trimmed")
    keys = [runner.batch_key(Work("chat", b"", 4.0, TranscribeOptions(), conversation=c)) for c in ("a:1", "b:2")]
    assert keys[0] is not None
    assert keys[0] == keys[1]


async def test_short_notes_share_reduced_windows_with_short_notes_only(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]], clip: Callable[..., np.ndarray]
) -> None:
    """A 4 s note padded to a 25 s note's window would pay for, and wait for, the longer decoding: the
    scheduler joins notes of one window class only, whatever their conversations."""
    long = clip("multilingual.mp3", 0.0, 25.0)
    runner, composed = _runner(tiny_engine, "trimmed")
    works = [Work("chat-1", to_wav(notes[1][1]), 4.0, TranscribeOptions(), conversation="slack:C1"),
             Work("chat-2", to_wav(long), 25.0, TranscribeOptions(), conversation="discord:7"),
             Work("chat-3", to_wav(notes[0][1]), 8.0, TranscribeOptions(), conversation="telegram:5")]
    comfy, license_, jfk = await _submitted_together(runner, works)
    assert sorted(sorted(batch) for batch in composed) == [["discord:7"], ["slack:C1", "telegram:5"]], composed
    assert "folder" in _words(comfy)
    assert "country" in _words(jfk)
    assert {"permission", "software"} <= set(_words(license_))


def test_in_one_call_the_short_note_is_answered_before_the_long_one_is_decoded(
    tiny_engine: FasterWhisperEngine, notes: list[tuple[str, np.ndarray]], clip: Callable[..., np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Notes of different window classes that still meet in one call (declared lengths can be wrong) are
    decoded in a window of their own class each, the short ones first and answered at once."""
    batcher = Batcher(tiny_engine, strategy="trimmed")
    options = TranscribeOptions()
    heard: list[tuple[int, str]] = []
    with caplog.at_level("DEBUG", logger="chatscribe.core.engines.batching"):
        results = batcher.transcribe([Clip(clip("multilingual.mp3", 0.0, 25.0), options), Clip(notes[1][1], options)],
                                     lambda index, result: heard.append((index, caplog.text)))
    assert [index for index, _ in heard] == [1, 0], "the short note waited for the long one"
    short_answered_with = heard[0][1]
    assert "1 notes in 10.0 s windows" in short_answered_with
    assert "s windows" not in short_answered_with.split("1 notes in 10.0 s windows")[1], \
        "the long note was decoded before the short one was answered"
    assert all(isinstance(r, Transcript) and r.model == batcher.model_id for r in results)
    assert "folder" in _words(results[1])  # type: ignore[arg-type]


def test_a_reduced_window_whisper_ends_early_is_decoded_on_from_there(
    tiny_engine: FasterWhisperEngine, clip: Callable[..., np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    """tiny.en ends the reduced window of this 12 s stretch at 10 s, two seconds before its speech does: the
    rest is decoded on from there, as transcribe() seeks on from its last timestamp, instead of the whole
    note again on the plain path; no word of the first window comes twice."""
    audio = clip("multilingual_voice.ogg", 14.0, 26.0)
    batcher = Batcher(tiny_engine, strategy="trimmed")
    with caplog.at_level("DEBUG", logger="chatscribe.core.engines.batching"):
        reduced = batcher.transcribe_reduced(audio, TranscribeOptions())
    assert "decoded on from 10.0 s" in caplog.text
    assert reduced is not None, "the note went to the plain path"
    plain = tiny_engine.transcribe_plain(audio, TranscribeOptions())
    words = _words(reduced)
    assert {"permission", "notice"} <= set(words) & set(_words(plain)), reduced.text  # the last two seconds
    assert words.count("copyright") == _words(plain).count("copyright") == 1, f"said again: {reduced.text}"
    assert reduced.segments[-1].end > 11.0


def test_a_rest_failing_whispers_checks_sends_the_whole_note_to_the_plain_path(
    tiny_engine: FasterWhisperEngine, clip: Callable[..., np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    """English, then German that the English-only model cannot read: the reduced window stops where the
    German begins, and the rest, decoded on, fails Whisper's checks."""
    audio = clip("multilingual_voice.ogg", 35.0, 55.0)
    batcher = Batcher(tiny_engine, strategy="trimmed")
    with caplog.at_level("DEBUG", logger="chatscribe.core.engines.batching"):
        assert batcher.transcribe_reduced(audio, TranscribeOptions()) is None
    assert "decoded on from" in caplog.text
    assert "back to the plain path: compression ratio" in caplog.text
