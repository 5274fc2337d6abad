"""The language of short clips: detection alone vs detection with what the conversation tells (`base`, CPU).

Clips of 1.5–6 s, as chat voice notes are: cut at pauses (Silero VAD) from the shared English speech
(jfk.flac, the English half of multilingual.mp3, hotwords.mp3) and German speech (the German half of
multilingual.mp3), and short chat phrases synthesised with espeak-ng in 12 languages. Each clip's
language probabilities are measured once, the way the engine measures them (FasterWhisperEngine
.language_scores: every language over the VAD's speech, as transcribe() detects), and the batcher's way
(DecodingSteps.clip_language_scores: the clip encoded at its own length, for packed notes); then the pure
choice (core/language_choice.py choose) is applied with each conversation:

- detection alone: no hints (what plain faster-whisper gives);
- recent notes: the chat's recent notes were in the clip's language;
- sender's language: the sender's app is set to the clip's language;
- both;
- misleading: the chat's recent notes were in another language (English for a non-English clip, German
  for an English one): what a hint costs when it is wrong.

Long clips (the whole recordings, and runs of short clips of one language joined to 12–30 s) are checked
the same way: with hints they must never be worse than detection alone. A few clips also go through
`engine.transcribe()` end to end, so the language the transcript reports is the one the choice made.
Target: at least 95 % of short clips right with the conversation's hints.

    python -m bench.bench_language [--no-write] [--sweep] [--scores FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report import (
    AUDIO_DIR,
    MODELS_DIR,
    format_machine,
    machine_info,
    mark,
    require_audio,
    table,
    write_section,
)
from chatscribe.core.engines.decoding_steps import speech_only
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.language_choice import CONFIDENT, SHORT_CLIP_S, WEIGHTS, choose, hints_for
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.options import TranscribeOptions

TARGET = 0.95
MIN_S, MAX_S = 1.5, 6.0
RECORDINGS = (("jfk.flac", 0.0, None, "en"), ("hotwords.mp3", 0.0, None, "en"),
              ("multilingual.mp3", 0.0, 25.5, "en"), ("multilingual.mp3", 31.0, None, "de"))
"""(file, from s, to s, language): the shared speech the real clips are cut from."""
PHRASES: dict[str, tuple[str, ...]] = {
    "en-us": ("Continue.", "Yes, exactly.", "See you tomorrow at five.", "Can you call me back?",
              "I'm on my way.", "Thanks, that sounds great."),
    "de": ("Ja, genau.", "Bis morgen um fünf.", "Kannst du mich zurückrufen?", "Ich bin unterwegs.",
           "Danke, das klingt gut.", "Weiter."),
    "fr": ("Oui, exactement.", "À demain à cinq heures.", "Tu peux me rappeler?", "Je suis en route.",
           "Merci, ça a l'air super.", "Continue."),
    "es": ("Sí, exactamente.", "Hasta mañana a las cinco.", "¿Puedes llamarme luego?", "Voy de camino.",
           "Gracias, suena genial.", "Sigue."),
    "it": ("Sì, esatto.", "A domani alle cinque.", "Puoi richiamarmi?", "Sto arrivando.",
           "Grazie, sembra fantastico.", "Continua."),
    "pt": ("Sim, exatamente.", "Até amanhã às cinco.", "Pode me ligar de volta?", "Estou a caminho.",
           "Obrigado, parece ótimo.", "Continue."),
    "nl": ("Ja, precies.", "Tot morgen om vijf uur.", "Kun je me terugbellen?", "Ik ben onderweg.",
           "Bedankt, dat klinkt goed.", "Ga door."),
    "ru": ("Да, именно.", "До завтра в пять.", "Можешь мне перезвонить?", "Я уже в пути.",
           "Спасибо, звучит отлично.", "Продолжай."),
    "uk": ("Так, саме так.", "До завтра о п'ятій.", "Можеш мені передзвонити?", "Я вже в дорозі.",
           "Дякую, звучить чудово.", "Продовжуй."),
    "pl": ("Tak, dokładnie.", "Do jutra o piątej.", "Możesz do mnie oddzwonić?", "Jestem w drodze.",
           "Dzięki, brzmi świetnie.", "Dalej."),
    "sv": ("Ja, precis.", "Vi ses i morgon klockan fem.", "Kan du ringa tillbaka?", "Jag är på väg.",
           "Tack, det låter bra.", "Fortsätt."),
    "tr": ("Evet, aynen.", "Yarın beşte görüşürüz.", "Beni geri arayabilir misin?", "Yoldayım.",
           "Teşekkürler, harika görünüyor.", "Devam et."),
}
"""espeak-ng voice -> short chat phrases (the language is the voice's, "en-us" -> "en")."""
VOICE_LANGUAGE = {"en-us": "en"}
SENDER = "sender's language"
SECTION = "Language of short clips: detection alone vs with the conversation's hints (`base`, CPU)"
"""The section's title and its name in docs/benchmarks.md (the marker the section is replaced by)."""


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    language: str
    audio: np.ndarray
    source: str
    """real or synthesised"""

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def real_clips() -> list[Clip]:
    """Spans of 1.5–6 s cut at the VAD's pauses: consecutive speech chunks joined while under MAX_S."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    clips = []
    for name, start_s, end_s, language in RECORDINGS:
        audio = decode_audio((AUDIO_DIR / name).read_bytes(), max_duration_s=3600).samples
        audio = audio[int(start_s * SAMPLE_RATE) : None if end_s is None else int(end_s * SAMPLE_RATE)]
        chunks = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=150, speech_pad_ms=100))
        span: list[int] | None = None
        for chunk in [*chunks, None]:
            if chunk is not None and span is not None and (chunk["end"] - span[0]) / SAMPLE_RATE <= MAX_S:
                span[1] = chunk["end"]
                continue
            if span is not None and (span[1] - span[0]) / SAMPLE_RATE >= MIN_S:
                clips.append(Clip(f"{name}@{start_s + span[0] / SAMPLE_RATE:.1f}s", language,
                                  audio[span[0] : span[1]], "real"))
            span = None if chunk is None else [chunk["start"], chunk["end"]]
    return clips


def synthesised_clips(folder: Path) -> list[Clip]:
    clips = []
    for voice, phrases in PHRASES.items():
        for index, phrase in enumerate(phrases):
            path = folder / f"{voice}-{index}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "135", "-w", str(path), phrase], check=True)
            samples = decode_audio(path.read_bytes(), max_duration_s=60).samples
            # A one-word note still lasts a moment: the press of the button, the breath before the word.
            pad = np.zeros(max(0, int(MIN_S * SAMPLE_RATE) - len(samples)) // 2 + SAMPLE_RATE // 5, np.float32)
            samples = np.concatenate([pad, samples, pad])
            clips.append(Clip(f"{voice}: {phrase}", VOICE_LANGUAGE.get(voice, voice), samples, "espeak-ng"))
    return clips


def long_clips(short: list[Clip]) -> list[Clip]:
    """The whole recordings, and each language's short clips joined (half a second apart) to 12–30 s."""
    clips = []
    for name, start_s, end_s, language in RECORDINGS:
        audio = decode_audio((AUDIO_DIR / name).read_bytes(), max_duration_s=3600).samples
        part = audio[int(start_s * SAMPLE_RATE) : None if end_s is None else int(end_s * SAMPLE_RATE)]
        clips.append(Clip(f"{name} from {start_s:.0f}s", language, part, "real"))
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    by_language: dict[str, list[Clip]] = defaultdict(list)
    for clip in short:
        by_language[clip.language].append(clip)
    for language, clips_of in by_language.items():
        joined: list[np.ndarray] = []
        for clip in clips_of:
            joined += [clip.audio, pause]
            if sum(len(a) for a in joined) / SAMPLE_RATE >= 12:
                break
        audio = np.concatenate(joined)[: 30 * SAMPLE_RATE]
        if len(audio) / SAMPLE_RATE > SHORT_CLIP_S:
            clips.append(Clip(f"{language} clips joined", language, audio, clips_of[0].source))
    return clips


def conversations(clip: Clip) -> dict[str, tuple[tuple[str, str], ...]]:
    wrong = "de" if clip.language == "en" else "en"
    return {
        "detection alone": (),
        "recent notes": hints_for((clip.language,), None),
        SENDER: hints_for((), clip.language),
        "both": hints_for((clip.language,), clip.language),
        "misleading recent notes": hints_for((wrong,), None),
    }


def right_share(clips: list[Clip], scores: list[list[tuple[str, float]]], **params: object) -> dict[str, float]:
    """Share of clips whose chosen language is theirs, per conversation."""
    right: dict[str, int] = defaultdict(int)
    for clip, ranked in zip(clips, scores, strict=True):
        for name, hints in conversations(clip).items():
            choice = choose(ranked, duration_s=clip.duration_s, hints=hints, **params)  # type: ignore[arg-type]
            right[name] += choice.language == clip.language
    return {name: right[name] / len(clips) for name in conversations(clips[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    parser.add_argument("--sweep", action="store_true", help="also print other thresholds and weights")
    parser.add_argument("--scores", type=Path, help="keep the measured probabilities in this JSON file and "
                        "reuse them when it exists (to try other settings without measuring again)")
    args = parser.parse_args()
    require_audio()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to synthesise the clips: apt-get install -y espeak-ng")
    info = machine_info()  # the load average at the start, before the measuring adds its own
    started = time.perf_counter()
    engine = FasterWhisperEngine(resolve_model("base", MODELS_DIR), device="cpu", workers=1)
    with tempfile.TemporaryDirectory() as folder:
        short = real_clips() + synthesised_clips(Path(folder))
    short = [c for c in short if MIN_S <= c.duration_s <= MAX_S]
    long = long_clips(short)
    measured = time.perf_counter()
    if args.scores and args.scores.exists():
        whole, packed, long_scores = json.loads(args.scores.read_text())
    else:
        whole = [engine.language_scores(c.audio) for c in short]
        packed = [engine.steps.clip_language_scores([speech_only(c.audio, engine.steps.speech_chunks(c.audio))])[0]
                  for c in short]
        long_scores = [engine.language_scores(c.audio) for c in long]
        if args.scores:
            args.scores.write_text(json.dumps([whole, packed, long_scores]))
    detect_s = time.perf_counter() - measured

    results = {"engine": right_share(short, whole), "packed": right_share(short, packed)}
    long_results = right_share(long, long_scores)
    end_to_end = _end_to_end(engine, short, whole)
    misses = _misses(short, whole)
    if args.sweep:
        _sweep(short, whole, packed)
    languages = sorted({c.language for c in short})
    per_language = _per_language(short, whole)
    elapsed = time.perf_counter() - started

    hinted = min(results["engine"]["recent notes"], results["engine"][SENDER])
    passed = hinted >= TARGET and all(long_results[n] >= long_results["detection alone"]
                                      for n in long_results if n != "misleading recent notes")
    durations = [c.duration_s for c in short]
    lines = [
        f"## {SECTION}",
        "",
        f"{elapsed:.0f} s in all, {detect_s:.0f} s of them language detection (the load average under Machine "
        "says how busy the CPU was with other work when it started).",
        "",
        f"{len(short)} short clips ({min(durations):.1f}–{max(durations):.1f} s, median "
        f"{float(np.median(durations)):.1f} s): {sum(c.source == 'real' for c in short)} cut at pauses from the "
        f"shared English and German speech, {sum(c.source != 'real' for c in short)} synthesised with espeak-ng "
        f"in {len(PHRASES)} languages ({', '.join(languages)}); {len(long)} long clips (12–60 s). Settings of "
        f"core/language_choice.py: a clip up to {SHORT_CLIP_S:g} s whose top language is under {CONFIDENT:g} "
        f"takes hints, weighted {', '.join(f'{k} ×{v:g}' for k, v in WEIGHTS.items())}.",
        "",
        table(["share of clips in the right language", *results["engine"]], [
            ["short clips, engine (whole-window detection)", *(_pct(v) for v in results["engine"].values())],
            ["short clips, packed notes (clip-length detection)", *(_pct(v) for v in results["packed"].values())],
            ["long clips (hints never apply)", *(_pct(v) for v in long_results.values())],
        ]),
        "",
        f"{mark(passed)} target: at least {TARGET:.0%} of short clips right with the conversation's hints "
        f"(recent notes {_pct(results['engine']['recent notes'])}, sender's language "
        f"{_pct(results['engine'][SENDER])}); long clips never worse than detection alone.",
        "",
        "Per language (engine; detection alone → with the recent notes' language):",
        "",
        table(["language", "clips", "detection alone", "recent notes"],
              [[code, n, _pct(alone), _pct(hinted_share)] for code, (n, alone, hinted_share) in per_language.items()]),
        "",
        f"End to end (`engine.transcribe()` with the recent notes' hint, {end_to_end[1]} clips that detection "
        f"alone gets wrong): {end_to_end[0]} came back in their own language, and the transcript names the "
        "reason `recent_notes`" + (" for each." if end_to_end[0] == end_to_end[1] else f" for {end_to_end[2]}."),
        "",
        "Still wrong with the recent notes' hint: " + (", ".join(misses) if misses else "none") + ".",
        "",
        "A wrong hint costs little where detection is sure and much where it is not: the misleading column "
        "is a chat whose recent notes were in another language (an English \"Continue.\" in a German chat). "
        "Only short clips under the confidence bar ever change. The cost is real: in a chat whose recent notes "
        "were in another language, a short clip detection is unsure of comes out in that language "
        f"({_pct(results['engine']['misleading recent notes'])} right instead of "
        f"{_pct(results['engine']['detection alone'])}), until a confidently detected note of the new language "
        "joins the chat's recent languages.",
        "",
        "### Machine",
        "",
        format_machine(info),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


def _end_to_end(engine: FasterWhisperEngine, short: list[Clip], scores: list[list[tuple[str, float]]],
                limit: int = 4) -> tuple[int, int, int]:
    """Clips detection alone gets wrong, through engine.transcribe() with their language as a recent one."""
    wrong = [c for c, ranked in zip(short, scores, strict=True) if ranked[0][0] != c.language][:limit]
    right = named = 0
    for clip in wrong:
        transcript = engine.transcribe(clip.audio, TranscribeOptions(language_hints=hints_for((clip.language,), None)))
        right += transcript.language == clip.language
        named += transcript.language_reason == "recent_notes"
    return right, len(wrong), named


def _misses(short: list[Clip], scores: list[list[tuple[str, float]]]) -> list[str]:
    misses = []
    for clip, ranked in zip(short, scores, strict=True):
        choice = choose(ranked, duration_s=clip.duration_s, hints=hints_for((clip.language,), None))
        if choice.language != clip.language:
            top = ", ".join(f"{code} {p:.2f}" for code, p in ranked[:3])
            misses.append(f"{clip.name} ({clip.language}, {clip.duration_s:.1f} s; detected {top})")
    return misses


def _per_language(short: list[Clip], scores: list[list[tuple[str, float]]]) -> dict[str, tuple[int, float, float]]:
    out: dict[str, tuple[int, float, float]] = {}
    for code in sorted({c.language for c in short}):
        pairs = [(c, s) for c, s in zip(short, scores, strict=True) if c.language == code]
        shares = right_share([c for c, _ in pairs], [s for _, s in pairs])
        out[code] = (len(pairs), shares["detection alone"], shares["recent notes"])
    return out


def _sweep(short: list[Clip], whole: list[list[tuple[str, float]]], packed: list[list[tuple[str, float]]]) -> None:
    rows = []
    for confident in (0.8, 0.9, 0.95):
        for recent, sender in ((8, 4), (100, 50), (1000, 500), (3000, 1000), (10000, 3000), (1e6, 1e5)):
            weights = {"recent_notes": float(recent), "sender_language": float(sender)}
            shares = right_share(short, whole, confident=confident, weights=weights)
            packed_shares = right_share(short, packed, confident=confident, weights=weights)
            rows.append([confident, f"{recent}/{sender}", *(_pct(v) for v in shares.values()),
                         _pct(packed_shares["recent notes"])])
    print(table(["confident", "weights", *right_share(short, whole), "packed, recent"], rows))


def _pct(value: float) -> str:
    return f"{value:.0%}"


if __name__ == "__main__":
    main()
