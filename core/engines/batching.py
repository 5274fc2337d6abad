"""Cross-request batching: several short notes through the model in one call.

Whisper pays for a whole 30 s window whatever the clip's length, so one by one a 4 s note costs almost
what a 30 s one does. Three ways to cut that cost, picked from how the device behaves:

- packed: notes of one language (declared, or detected for each note from an encoder pass over the
  note alone, a fraction of a window's cost) placed in one window with silence between them, decoded
  once; every word goes back to the note under its timestamp (the CPU win, where the encoder's fixed
  cost per window dominates);
- batched: each note keeps its own window and the windows go through the model in one call (the GPU
  win, where a batch of windows costs little more than one);
- trimmed: each note gets an encoder window of its own length plus a margin (`reduced_window_s`), not a
  whole 30 s one, and notes of one window class are decoded together (the CPU win where the encoder's
  cost follows the frames it gets, as CTranslate2's does): every note keeps its own decoding sequence,
  so no note's words shape another's, and its language is detected from the encoder output its
  transcription needs anyway. Where Whisper ends a window before the note's speech ends, the rest is
  decoded on from there, as transcribe() seeks on. A lone note takes the same shortcut
  (`transcribe_reduced`).

Every shortcut is guarded, and anything doubtful is done again: a packed note Whisper left without
words goes into the next round's windows; a window failing Whisper's own checks, or a note still without
its words, is transcribed on its own on the plain path (faster-whisper's transcribe(), 30 s windows, the
temperature fallback); so is a reduced-window note that fails Whisper's checks (compression ratio,
average log-probability, no-speech probability), leaves speech without words, or has a segment the
quality pass would drop as invented. Batching never loses a note's words. (core/engines/packing.py lays the notes
out and takes the words back; core/engines/decoding_steps.py does each step of the decoding.)

Which batcher an engine gets follows what it declares (core/engines/base.py): `Batcher` for one that hands
out its decoding steps, `WholeBatches` for one that batches whole inputs itself (`make_batcher`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import CannotTranslate
from ..language_choice import LanguageChoice, choose, reason_of
from ..media import SAMPLE_RATE
from ..options import TranscribeOptions
from ..quality import screen
from ..transcript import Segment, Transcript
from .base import Engine, InputBatchingEngine, WindowBatchingEngine, batches_inputs, batches_windows
from .decoding_steps import speech_only
from .packing import GAP_S, Prepared, Window, ended_early, incomplete, pack, restore, split_window

log = logging.getLogger(__name__)

MAX_NOTE_S = 30.0
"""Longer media go through transcribe() alone: they need more than one window anyway."""
PACK_ROUNDS = 3
"""Packed notes Whisper left without words are packed again, this often, before they go alone."""
COMPRESSION_LIMIT = 2.4
LOGPROB_LIMIT = -1.0
NO_SPEECH_LIMIT = 0.6
"""Whisper's own checks: a window failing them is decoded again on its own, with the fallback schedule."""
REDUCED_MARGIN_S = 2.0
REDUCED_MIN_S = 10.0
"""A reduced encoder window holds the note's speech plus this much of the window's padding, and at least
REDUCED_MIN_S: measured on the shared audio (bench/bench_batching.py), a 1 s margin made Whisper loop or
stop early on some notes, and the shortest notes (2 s) read worse in a window of under 10 s; from 2 s
of margin and 10 s of window on, the word error rate is plain faster-whisper's."""
REDUCED_GROUP = 8
"""Notes of similar length decoded in one call (each padded to the longest of its group)."""
CONTINUATIONS = 2
"""A reduced window Whisper ended before the note's speech did is decoded on from there this often (as
transcribe() seeks on), before the note goes to the plain path."""
REDUCED_CLASS_S = 10.0
"""Notes decoded in one reduced-window call have windows within one class of this width (`window_class`):
a 3 s note padded to a 25 s note's window pays for the longer encoding and waits for the longer
decoding, which made short notes of an 8-chat burst wait behind long ones (bench/bench_burst.py)."""

Strategy = Literal["packed", "batched", "trimmed"]
BatchingMode = Literal["auto", "packed", "batched", "trimmed", "off"]
"""auto measures the device on the first batch; off transcribes every note alone."""
OnResult = Callable[[int, "Transcript | Exception"], None]
"""Hears of each clip of a batch (its index) as soon as its outcome is known."""


@dataclass(frozen=True, slots=True)
class Clip:
    """One request's audio as batching takes it: a voice note, or any media short enough for one window."""

    audio: np.ndarray
    """16 kHz mono float32."""
    options: TranscribeOptions
    speech_mask: np.ndarray | None = field(default=None, repr=False)
    """The audio's core/quality.py speech_mask when the caller has it (the runner's checks need it too):
    the quality pass's guard then does not run the VAD over the note again."""


@dataclass(frozen=True, slots=True)
class _Heard:
    """What one decoding gave a note: its segments in speech time, and the window's language."""

    note: Prepared
    segments: list[Segment]
    code: str
    probability: float
    reason: str


@dataclass(frozen=True, slots=True)
class Profile:
    strategy: Strategy
    reason: str
    """Measured numbers behind the choice, for the log and `chatscribe doctor`."""
    singly: bool = False
    """Encode the windows of a batch one by one (then decode them together): measured where a batch of
    windows costs the encoder more per window than one window alone (a CPU's caches)."""


def reduced_window_s(speech_s: float) -> float:
    """The encoder window, in seconds, a note of `speech_s` seconds of speech gets on the reduced path."""
    return min(30.0, max(speech_s + REDUCED_MARGIN_S, REDUCED_MIN_S))


def window_class(seconds: float) -> int:
    """The class of a note's reduced window: notes of one class may be decoded in one call."""
    return math.ceil(reduced_window_s(seconds) / REDUCED_CLASS_S)


def declared_language(options: TranscribeOptions, multilingual: bool) -> str | None:
    """The language every note of these options is known to be in, or None when it must be detected."""
    if not multilingual:
        return "en"
    if options.language:
        return options.language
    if len(options.expected_languages) == 1:
        return options.expected_languages[0]
    return None


_profiles: weakref.WeakKeyDictionary[Any, Profile] = weakref.WeakKeyDictionary()
_profile_lock = threading.Lock()


class Batcher:
    """Batching for engines that hand out their decoding steps (batching == "windows")."""

    def __init__(
        self, engine: WindowBatchingEngine, *, strategy: BatchingMode = "auto", beam_size: int = 1,
        gap_s: float = GAP_S,
    ) -> None:
        self.engine = engine
        self.steps = engine.steps
        self.strategy = strategy
        self.beam_size = beam_size
        self.gap_s = gap_s
        self.reduced_beam_size = engine.beam_size
        self.model_id = f"{engine.model_id}:batch-beam{beam_size}"
        """Batched notes may decode with another beam than lone ones: part of every cache key."""

    # -- choosing the strategy ---------------------------------------------------------------------

    def known_strategy(self) -> Strategy | None:
        """The strategy when it is set or already measured, else None; never measures (the event loop asks)."""
        if self.strategy != "auto" and self.strategy != "off":
            return self.strategy
        measured = _profiles.get(self.engine)
        return None if measured is None else measured.strategy

    def call_key(self, duration_s: float) -> tuple[object, ...]:
        """What notes sharing one call must have in common besides their options, as far as the strategy
        is known: the class of their reduced windows (trimmed), else nothing."""
        return (window_class(duration_s),) if self.known_strategy() == "trimmed" else ()

    def may_pack(self, options: TranscribeOptions) -> bool:
        """Whether notes of these options may share a decoding sequence (packed windows); until the strategy
        is measured, on the first batch, packing is assumed."""
        return options.task == "transcribe" and self.known_strategy() not in ("batched", "trimmed")

    def profile(self) -> Profile:
        """Measured once per engine, on the first batch: does a batch of windows cost less per window, or
        does a reduced window cost less than a whole one?"""
        strategy = self.known_strategy()
        if strategy is not None and self.strategy != "auto":
            return Profile(strategy, f"set to {strategy}")
        with _profile_lock:
            if self.engine not in _profiles:
                _profiles[self.engine] = self._measure()
                log.info("batching: %s (%s)", _profiles[self.engine].strategy, _profiles[self.engine].reason)
            return _profiles[self.engine]

    def _measure(self) -> Profile:
        """Time one whole window, one reduced window and a batch of windows. On a GPU the batch is of whole
        windows (8, to show its parallelism); on a CPU of 2 reduced ones: the question is the same (does a
        batch cost less per window?) and the answer is cheap, with no more memory than one whole window."""
        gpu = self.engine.device.device == "cuda"
        count = 8 if gpu else 2
        silence = [np.zeros(SAMPLE_RATE, np.float32)] * count
        whole = self.steps.feature_windows(silence[:1])
        ten = self.steps.feature_windows(silence[:1], REDUCED_MIN_S)
        batch = self.steps.feature_windows(silence, None if gpu else REDUCED_MIN_S)
        self.steps.encode(whole)  # warm-up: first calls load kernels and fill caches
        self.steps.encode(ten)
        one = min(_timed(lambda: self.steps.encode(whole)) for _ in range(2))
        short = min(_timed(lambda: self.steps.encode(ten)) for _ in range(2))
        alone = one if gpu else short  # one window of the batch's size, on its own
        each = _timed(lambda: self.steps.encode(batch)) / count
        size = "whole" if gpu else f"{REDUCED_MIN_S:.0f} s"
        numbers = (f"one window {one * 1000:.0f} ms, a {REDUCED_MIN_S:.0f} s window {short * 1000:.0f} ms, "
                   f"{count} {size} windows in one call {each * 1000:.0f} ms each")
        if each < 0.5 * alone:
            return Profile("batched", f"{numbers}: the device encodes windows in parallel")
        singly = not gpu and each > alone
        how = "; windows encoded one by one, decoded together" if singly else ""
        if short < 0.5 * one:
            return Profile("trimmed", f"{numbers}: a window costs what its frames cost, so each note gets a "
                                      f"window of its own length{how}", singly)
        return Profile("packed", f"{numbers}: every window costs the same, so short notes share windows{how}",
                       singly)

    # -- transcribing --------------------------------------------------------------------------------

    def transcribe(self, notes: Sequence[Clip], on_result: OnResult | None = None) -> list[Transcript | Exception]:
        """One result per note, in order; an Exception in place of a note that failed on its own.

        `on_result(index, result)` hears of each note as soon as it is done: the batch's answers come
        before the notes that must go alone (media over 30 s, doubtful decodings) are transcribed.
        """
        answered: dict[int, Transcript | Exception] = {}

        def done(index: int, result: Transcript | Exception) -> None:
            answered[index] = result
            if on_result is not None:
                on_result(index, result)

        groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for index, note in enumerate(notes):
            if note.options.task == "translate" and not self.engine.multilingual:
                done(index, CannotTranslate(self.engine.model_id))  # never mislabelled
                continue
            groups[note.options.batch_key()].append(index)
        for indices in groups.values():
            self._group([notes[i] for i in indices], indices, done)
        for index, note in enumerate(notes):
            if index not in answered:
                done(index, self._on_its_own(note))
        return [answered[i] for i in range(len(notes))]

    def _group(self, notes: list[Clip], indices: list[int], answer: OnResult) -> None:
        """Notes sharing options, each answered as soon as its call is done; the ones left unanswered are
        transcribed alone."""
        options = notes[0].options
        prepared = []
        for index, note in zip(indices, notes, strict=True):
            duration = len(note.audio) / SAMPLE_RATE
            if duration > MAX_NOTE_S:
                continue
            chunks = self.steps.speech_chunks(note.audio)
            if chunks is not None and not chunks:  # what transcribe() answers when the VAD hears nobody
                answer(index, self._transcript((), options, None, 0.0, duration,
                                               reason_of(options, self.engine.multilingual)))
                continue
            speech = speech_only(note.audio, chunks)
            prepared.append(Prepared(index, speech, duration, chunks, audio=note.audio, speech_mask=note.speech_mask))
        language = declared_language(options, self.engine.multilingual)
        profile = self.profile()
        log.debug("%d note(s): %s (%s)", len(notes), profile.strategy, profile.reason)
        if profile.strategy == "trimmed":
            # Each note in its own sequence, decoded with the engine's beam: greedy decoding of reduced
            # windows lost words on the shared audio where beam 5 did not (bench/bench_batching.py).
            self._reduced(prepared, options, language, self.reduced_beam_size, answer)
            return
        if profile.strategy == "batched" or options.task != "transcribe":
            self._rounds(prepared, options, language, answer, packing=False)
            return
        for code, same_language in self._by_language(prepared, options, language).items():
            self._rounds(same_language, options, code, answer, packing=True)

    def _by_language(
        self, prepared: list[Prepared], options: TranscribeOptions, language: str | None
    ) -> dict[str, list[Prepared]]:
        """A window holds one language: notes of undeclared language are detected first, each on its own."""
        if language is not None:
            return {language: prepared}
        if len(prepared) < 2:
            return {}  # a lone note goes alone, and transcribe() detects its language
        try:
            scores = self.steps.clip_language_scores([p.speech for p in prepared])
        except Exception:
            log.exception("language detection failed; transcribing these notes one by one")
            return {}
        groups: dict[str, list[Prepared]] = defaultdict(list)
        for note, ranked in zip(prepared, scores, strict=True):
            choice = _chosen(ranked, options, note.duration_s)
            note.language, note.language_reason = (choice.language, choice.probability), choice.reason
            groups[choice.language].append(note)
        return groups

    def _reduced(
        self, prepared: list[Prepared], options: TranscribeOptions, language: str | None, beam_size: int,
        answer: OnResult,
    ) -> None:
        """Each note in a reduced window of its own; notes of one window class decoded in one call, the
        shortest first."""
        groups: list[list[Prepared]] = []
        for note in sorted(prepared, key=lambda p: p.speech_s):
            group = groups[-1] if groups else []
            if group and len(group) < REDUCED_GROUP and window_class(group[0].speech_s) == window_class(note.speech_s):
                group.append(note)
            else:
                groups.append([note])
        for group in groups:
            seconds = reduced_window_s(group[-1].speech_s)
            try:
                answered, _ = self._decode([Window([(p, 0.0)]) for p in group], options, language,
                                           seconds=seconds, beam_size=beam_size)
            except Exception:  # the shortcut is an optimisation: a failure here must not fail the notes
                log.exception("reduced-window decoding failed; transcribing these notes on the plain path")
                continue
            log.debug("%d notes in %.1f s windows (trimmed, beam %d): %d answered, %d back to the plain path",
                      len(group), seconds, beam_size, len(answered), len(group) - len(answered))
            for index, transcript in answered.items():
                answer(index, transcript)

    def transcribe_reduced(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript | None:
        """One note through a reduced encoder window, guarded as in a batch; None where the device does not
        gain from it (measured), the note is too long, or its result fails a guard: the caller then takes
        the plain path. The engine's lone-note shortcut, open to any caller (e.g. a realtime utterance)."""
        if len(audio) > MAX_NOTE_S * SAMPLE_RATE or self.profile().strategy != "trimmed":
            return None
        if options.task == "translate" and not self.engine.multilingual:
            return None  # the plain path says why with its sentence
        answered: dict[int, Transcript | Exception] = {}
        self._group([Clip(audio, options)], [0], answered.__setitem__)
        result = answered.get(0)
        return result if isinstance(result, Transcript) else None

    def _rounds(
        self, prepared: list[Prepared], options: TranscribeOptions, language: str | None, answer: OnResult, *,
        packing: bool,
    ) -> None:
        """Notes of one language (or each detected in its own window when not packing)."""
        for _ in range(PACK_ROUNDS if packing else 1):
            if len(prepared) < 2:
                break  # a single note goes alone, with the engine's own beam
            if packing:
                placements = pack([p.speech_s for p in prepared], gap_s=self.gap_s)
                windows = [Window([(prepared[i], offset) for i, offset in window]) for window in placements]
            else:
                windows = [Window([(p, 0.0)]) for p in prepared]
            try:
                answered, prepared = self._decode(windows, options, language)
            except Exception:  # the batch is an optimisation: a failure here must not fail the notes
                log.exception("batched decoding failed; transcribing these notes one by one")
                break
            log.debug("%d windows (%s): %d notes answered, %d to pack again", len(windows),
                      "packed" if packing else "batched", len(answered), len(prepared))
            for index, transcript in answered.items():
                answer(index, transcript)

    def _decode(
        self, windows: list[Window], options: TranscribeOptions, language: str | None, *,
        seconds: float | None = None, beam_size: int | None = None, prompts: Sequence[str | None] | None = None,
        continuations: int = CONTINUATIONS,
    ) -> tuple[dict[int, Transcript], list[Prepared]]:
        """The notes answered, and the packed notes to try again: Whisper stopped before their words.

        `seconds`: reduced encoder windows of that length (the trimmed strategy), else whole 30 s ones.
        `prompts`: the text each window's decoding follows (default: the options' vocabulary)."""
        steps = self.steps
        features = steps.feature_windows([w.audio for w in windows], seconds)
        encoded = steps.encode_each(features) if self._singly() else steps.encode(features)
        if language is not None:
            languages = [(language, 1.0)] * len(windows)
            reasons = [_declared_reason(options, self.engine.multilingual)] * len(windows)
        else:  # one note a window here: each is detected in its own (packed notes were grouped by language)
            choices = [_chosen(ranked, options, w.notes[0][0].duration_s)
                       for ranked, w in zip(steps.language_scores(encoded), windows, strict=True)]
            languages = [(c.language, c.probability) for c in choices]
            reasons = [c.reason for c in choices]
        tokenizers = {code: steps.tokenizer(code, options.task) for code, _ in languages}
        window_tokenizers = [tokenizers[code] for code, _ in languages]
        temperature = options.temperature or 0.0
        generated = steps.generate(encoded, window_tokenizers, prompts or [options.vocabulary] * len(windows),
                                    beam_size=beam_size or self.beam_size, temperature=temperature, seconds=seconds)
        segments = [
            steps.split_segments(tok, g.tokens, w.duration_s)
            for tok, g, w in zip(window_tokenizers, generated, windows, strict=True)
        ]
        packed = any(len(w.notes) > 1 for w in windows)
        if packed or options.word_timestamps:
            self._align(windows, segments, languages, tokenizers, features, encoded)
        answered: dict[int, Transcript] = {}
        again: list[Prepared] = []
        cut: list[_Heard] = []
        for window, window_segments, result, (code, probability), reason in zip(
            windows, segments, generated, languages, reasons, strict=True
        ):
            checked = options.temperature is None  # else the caller chose the temperature: no fallback
            shared = len(window.notes) > 1
            if checked and not shared and _fails_checks(result.compression_ratio, result.avg_logprob):
                log.debug("note %d back to the plain path: compression ratio %.2f, avg logprob %.2f",
                          window.notes[0][0].index, result.compression_ratio, result.avg_logprob)
                continue  # decoded again alone, with Whisper's temperature fallback
            if seconds is not None and result.no_speech_prob > NO_SPEECH_LIMIT:
                # A reduced window that Whisper hears as silent: the whole window decides, not the shortcut.
                log.debug("note %d back to the plain path: no-speech probability %.2f in a reduced window",
                          window.notes[0][0].index, result.no_speech_prob)
                continue
            for note, note_segments in split_window(window, window_segments, result).items():
                if checked and shared and _note_fails_checks(note_segments):
                    continue  # judged on the note's own words: other notes' text must not count
                heard = _Heard(note, note_segments, code, probability, reason)
                if incomplete(note, note_segments):
                    # Whisper may end a window early (transcribe() decodes the rest again): a packed note
                    # goes first in a window of the next round, or alone for one that was first already; a
                    # reduced window is decoded on from where it stopped.
                    if shared and note is not window.notes[0][0]:
                        again.append(note)
                    elif seconds is not None and continuations and ended_early(note, note_segments):
                        cut.append(heard)
                    else:
                        log.debug("note %d back to the plain path: speech left without words", note.index)
                    continue
                transcript = self._accepted(heard, options)
                if transcript is not None:
                    answered[note.index] = transcript
        if cut:
            answered.update(self._continued(cut, options, beam_size or self.beam_size, continuations - 1))
        return answered, sorted(again, key=lambda n: n.index)

    def _continued(self, cut: list[_Heard], options: TranscribeOptions, beam_size: int, continuations: int
                   ) -> dict[int, Transcript]:
        """Reduced windows Whisper ended before the note's speech did, decoded on from their last segment's
        end with the text so far as the prompt, as transcribe() seeks on from its last timestamp: far
        cheaper than the plain path, which would decode the whole note again in 30 s windows."""
        done: dict[int, Transcript] = {}
        for heard in cut:
            # One at a time: CTranslate2 decodes a batch only when its prompts are of one length.
            start = heard.segments[-1].end
            speech = heard.note.speech[round(start * SAMPLE_RATE):]
            rest = Prepared(heard.note.index, speech, len(speech) / SAMPLE_RATE, None)
            so_far = " ".join(part for part in (options.vocabulary, *(s.text.strip() for s in heard.segments)) if part)
            seconds = reduced_window_s(rest.speech_s)
            log.debug("note %d decoded on from %.1f s in a %.1f s window: Whisper ended its reduced window early",
                      rest.index, start, seconds)
            try:
                rests, _ = self._decode([Window([(rest, 0.0)])], options, heard.code, seconds=seconds,
                                        beam_size=beam_size, prompts=[so_far], continuations=continuations)
            except Exception:  # the shortcut is an optimisation: a failure here must not fail the note
                log.exception("decoding on failed; transcribing the note on the plain path")
                continue
            if rest.index not in rests:
                continue  # the rest failed a check (logged): the whole note goes to the plain path
            merged = [*heard.segments, *(_shifted(s, start) for s in rests[rest.index].segments)]
            if incomplete(heard.note, merged):
                log.debug("note %d back to the plain path: speech left without words after decoding on", rest.index)
                continue
            transcript = self._accepted(dataclasses.replace(heard, segments=merged), options)
            if transcript is not None:
                done[heard.note.index] = transcript
        return done

    def _accepted(self, heard: _Heard, options: TranscribeOptions) -> Transcript | None:
        """The note's transcript from its segments (in speech time), or None where the quality pass would
        drop one of them as invented: a shortcut's result is not trusted with it, the plain path decides."""
        note = heard.note
        restored = restore(note, heard.segments, keep_words=options.word_timestamps)
        code, probability = note.language or (heard.code, heard.probability)
        transcript = self._transcript(restored, options, code, probability, note.duration_s,
                                      note.language_reason if note.language else heard.reason)
        if note.audio is not None and screen(transcript, note.audio, note.speech_mask).dropped:
            log.debug("note %d back to the plain path: the quality pass drops a segment of its shared decoding",
                      note.index)
            return None
        return transcript

    def _singly(self) -> bool:
        measured = _profiles.get(self.engine)
        return measured is not None and measured.singly

    def _align(
        self, windows: list[Window], segments: list[list[dict[str, Any]]], languages: list[tuple[str, float]],
        tokenizers: dict[str, Any], features: np.ndarray, encoded: Any,
    ) -> None:
        """Word times from cross-attention, per language (the alignment prompt names the language)."""
        by_language: dict[str, list[int]] = defaultdict(list)
        for k, (code, _) in enumerate(languages):
            if segments[k]:
                by_language[code].append(k)
        for code, ks in by_language.items():
            encoder_output = encoded if len(ks) == len(windows) else self.steps.select(encoded, features, ks)
            self.steps.align_words([segments[k] for k in ks], tokenizers[code], encoder_output,
                                    [windows[k].duration_s for k in ks])

    def _on_its_own(self, note: Clip) -> Transcript | Exception:
        # The plain path itself: not the engine's lone-note shortcut, which the note may just have failed.
        try:
            return self.engine.transcribe_plain(note.audio, note.options)
        except Exception as exc:
            return exc

    def _transcript(
        self, segments: Sequence[Segment], options: TranscribeOptions, language: str | None, probability: float,
        duration_s: float, reason: str,
    ) -> Transcript:
        return Transcript(
            segments=tuple(segments), language=language, language_probability=probability, duration_s=duration_s,
            model=self.model_id, task=options.task, language_reason=reason,
        )


class WholeBatches:
    """Batching for engines that batch by themselves (batching == "inputs"): the clips of a batch, which
    share their options, go through `engine.transcribe_batch` in one call."""

    def __init__(self, engine: InputBatchingEngine) -> None:
        self.engine = engine
        self.model_id = engine.model_id

    def call_key(self, duration_s: float) -> tuple[object, ...]:
        return ()  # the engine pads its inputs as it sees fit

    def may_pack(self, options: TranscribeOptions) -> bool:
        return False  # each input keeps its own sequence

    def transcribe(self, notes: Sequence[Clip], on_result: OnResult) -> None:
        try:
            results: list[Transcript | Exception] = list(
                self.engine.transcribe_batch([n.audio for n in notes], notes[0].options)
            )
        except Exception as exc:
            results = [exc] * len(notes)
        for index, result in enumerate(results):
            on_result(index, result)


def make_batcher(engine: Engine, mode: BatchingMode, *, beam_size: int = 1) -> Batcher | WholeBatches | None:
    """The batcher for what the engine declares it can do (`engine.batching`), None when batching is off."""
    if mode == "off":
        return None
    if batches_inputs(engine):
        return WholeBatches(engine)
    if batches_windows(engine):
        return Batcher(engine, strategy=mode, beam_size=beam_size)
    return None


def _chosen(ranked: list[tuple[str, float]], options: TranscribeOptions, duration_s: float) -> LanguageChoice:
    """A note's language from its detection, CHATSCRIBE_LANGUAGES and the conversation's hints, as
    engine.transcribe() chooses it (core/language_choice.py)."""
    choice = choose(ranked, duration_s=duration_s, expected=options.expected_languages, hints=options.language_hints)
    log.debug("language %s (%s, p=%.2f) of a %.1f s note", choice.language, choice.reason, choice.probability,
              duration_s)
    return choice


def _declared_reason(options: TranscribeOptions, multilingual: bool) -> str:
    if multilingual and not options.language and options.expected_languages:
        return "operator_languages"  # the only language CHATSCRIBE_LANGUAGES names
    return reason_of(options, multilingual)


def _shifted(segment: Segment, offset_s: float) -> Segment:
    words = tuple(dataclasses.replace(w, start=w.start + offset_s, end=w.end + offset_s) for w in segment.words)
    return dataclasses.replace(segment, start=segment.start + offset_s, end=segment.end + offset_s, words=words)


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _fails_checks(compression_ratio: float, avg_logprob: float) -> bool:
    return compression_ratio > COMPRESSION_LIMIT or avg_logprob < LOGPROB_LIMIT


def _note_fails_checks(segments: list[Segment]) -> bool:
    from faster_whisper.transcribe import get_compression_ratio

    words = [w for s in segments for w in s.words]
    if not words:
        return False
    logprob = float(np.mean([math.log(max(w.probability, 1e-6)) for w in words]))
    return _fails_checks(get_compression_ratio("".join(s.text for s in segments).strip()), logprob)
