"""The sentences people read, in one table, so every platform says the same thing the same way.

Plain text with no platform markup: each platform renders them in its own (escaping for Slack's
mrkdwn, Discord's markdown). Sentences that carry values are small functions. This module starts
with the settings sentences; the delivery and error sentences join it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .languages import display_name

# -- settings: refusals (the setting is not changed) -------------------------------------------------


LANGUAGE_CHOICES = "Language takes auto, a code such as en or de, or an English name such as French."


def unknown_language(typed: str) -> str:
    return (f"I don't know the language “{typed.strip()[:40]}”: use auto, a code such as en or de, "
            "or an English name such as French.")


def language_not_offered(typed: str, offered: Iterable[str]) -> str:
    names = [display_name(code) for code in offered]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"“{typed.strip()[:40]}” is not one of the languages this service transcribes: use auto, {listed}."


def on_or_off(setting: str) -> str:
    return f"{SETTING_NAMES[setting]} takes on or off."


FORMAT_CHOICES = "Format takes text, srt or vtt."
VOCABULARY_TOO_LONG = "The vocabulary takes at most {limit} characters: list only the names and terms to expect."


def unknown_setting(typed: str, choices: Iterable[str]) -> str:
    return f"There is no setting “{typed.strip()[:30]}”: the settings are {', '.join(choices)}."


# -- settings: confirmations -------------------------------------------------------------------------

SETTING_NAMES = {
    "language": "Language", "translate": "Translation to English", "vocab": "Vocabulary", "format": "Format",
    "timestamps": "Timestamps", "auto": "Automatic transcription",
}


def language_set(code: str | None) -> str:
    return f"Language set to {display_name(code)}." if code else "Language set to auto-detect."


def vocabulary_set(terms: str | None) -> str:
    return f"Vocabulary set to: {terms}" if terms else "Vocabulary cleared."


def switched(setting: str, on: bool) -> str:
    """Translation, timestamps and automatic transcription: "Timestamps: on." """
    return f"{SETTING_NAMES[setting]}: {'on' if on else 'off'}."


def format_set(fmt: str) -> str:
    extension = "txt" if fmt == "text" else fmt
    return f"Format: {fmt}; a transcript sent as a file comes as a .{extension} file."


def settings_lines(*, language: str | None, translate: bool, fmt: str, timestamps: bool, vocabulary: str | None,
                   auto: bool | None, speakers: str = "off") -> list[str]:
    """What `settings` shows, one line per setting; `auto` None leaves its line out (not offered there)."""
    lines = [
        f"Language: {display_name(language) if language else 'auto'}",
        f"Translate to English: {_on(translate)}",
        f"Format: {fmt}",
        f"Timestamps: {_on(timestamps)}",
        f"Speaker labels: {speakers}",
        f"Vocabulary: {vocabulary or '(none)'}",
    ]
    if auto is not None:
        lines.append(f"Automatic transcription: {_on(auto)}")
    return lines


def _on(flag: bool) -> str:
    return "on" if flag else "off"


# -- answers: delivery, progress, no speech, errors ----------------------------------------------------

NO_SPEECH = "No speech detected."
INTERNAL_ERROR = "Something went wrong while transcribing that file; please try again later."
BUSY = "Too many recordings are waiting right now"
"""Busy's reason when the queue or the media budget is full; Busy adds when to try again."""
RATE_LIMITED = "You've sent a lot in a short time"
"""Busy's reason past CHATSCRIBE_USER_RATE (counted here or across front ends)."""
TRUNCATED = "The file ended early (perhaps an interrupted upload): this is the part that was there."
DOUBTFUL = "Some parts were hard to make out and may be wrong: check the passages marked [?]."
"""The short marker on an answer that holds doubtful (low-confidence) passages."""
DOUBTFUL_MARK = "[?]"
"""Put before each doubtful passage in txt, srt and vtt files."""
FULL_TRANSCRIPT_ATTACHED = "The full transcript is in the attached file."
RESTARTING = "I'm restarting: please send that again in a minute."
WENT_WRONG = "Something went wrong on my side; please try again later."
"""A command that failed for a reason of ours (logged with its traceback, never shown)."""
FILE_DELETED = "That file was deleted before I could transcribe it."


def download_failed(platform: str) -> str:
    """`platform` as people name it: Telegram, Discord, Slack."""
    return f"I couldn't download that file from {platform}; please send it again."


def progress(stage: str, *, position: int | None = None, fraction: float = 0.0, eta_s: float | None = None,
             detail: str | None = None, file_name: str | None = None) -> str:
    """The status message while a recording waits ("Waiting to transcribe (position 2 in the queue)…")
    or runs ("Transcribing… 40%, about 20 s left")."""
    if detail:  # e.g. the transcription workers are out of reach: say so rather than a stale position
        return detail
    name = f" {file_name}" if file_name else ""
    if stage == "queued":
        place = f" (position {position} in the queue)" if position else ""
        return f"Waiting to transcribe{name}{place}{_eta(eta_s)}…"
    percent = int(max(0.0, min(1.0, fraction)) * 100)
    return f"Transcribing{name}… {percent}%{_eta(eta_s)}"


def progress_starts(file_name: str | None = None) -> tuple[str, ...]:
    """How a status message for this file begins (to find one again in a thread after a restart)."""
    name = f" {file_name}" if file_name else ""
    return f"Transcribing{name}…", f"Waiting to transcribe{name}"


def _eta(eta_s: float | None) -> str:
    if not eta_s or eta_s < 5:
        return ""
    if eta_s < 90:
        return f", about {round(eta_s / 5) * 5:.0f} s left"
    return f", about {round(eta_s / 60):.0f} min left"


# -- speaker labels (core/speakers) -------------------------------------------------------------------

SPEAKERS_NOT_TOLD_APART = ("Speakers could not be told apart in this recording, so the transcript below has "
                           "no speaker labels.")
SPEAKERS_UNAVAILABLE = ("Speakers could not be told apart: speaker labelling is not installed on this service "
                        "(the chatscribe[speakers] extra), so the transcript below has no speaker labels.")
SPEAKER_MODE_CHOICES = "Speakers takes on, off or auto."


def speakers_set(mode: str) -> str:
    """`speakers on|off|auto`: what the next recordings here get."""
    if mode == "on":
        return "Speaker labels: on; a recording with several voices says who speaks."
    if mode == "auto":
        return "Speaker labels: auto; long recordings (calls, meetings) say who speaks, voice notes don't."
    return "Speaker labels: off."


def speaker_counts_refused(least: int | None, most: int | None, limit: int) -> str:
    """min/max speakers out of range or the wrong way round."""
    return (f"The number of speakers must be between 1 and {limit}, and the least no more than the most "
            f"(asked: {least if least is not None else 'any'} to {most if most is not None else 'any'}).")


def known_speakers_refused(limit: int) -> str:
    return (f"Known speakers take a name and a 2–10 s recording of that voice each, at most {limit} of them, "
            "with different names.")


# -- translation ---------------------------------------------------------------------------------------


def cannot_translate(model: str) -> str:
    """Translation asked of an English-only model: said before anything is transcribed."""
    return (f"I can't translate with this service's English-only model ({model}): turn translation off, or ask "
            "whoever runs the service for a multilingual model, such as CHATSCRIBE_MODEL=base.")


# -- your own model (core/engines/checkpoints.py; read by the operator, at start or in the CLI) ----------

FINETUNE_EXTRA = "pip install 'chatscribe[finetune]'"


def converter_missing(model: str, missing: str) -> str:
    """A transformers checkpoint or LoRA adapter, but the packages that convert or merge it are absent."""
    return (f"The model {model} is a transformers checkpoint or LoRA adapter, and converting it needs "
            f"{missing}, which is not installed: {FINETUNE_EXTRA}.")


def not_a_whisper_model(folder: str, why: str) -> str:
    return (f"The folder {folder} is not a Whisper model ({why}): set CHATSCRIBE_MODEL to a CTranslate2 "
            "model folder (model.bin and config.json), a transformers Whisper checkpoint (config.json, "
            "model.safetensors or pytorch_model.bin, the tokenizer), a LoRA adapter folder, or a model name.")


def model_too_large(model: str, need_gb: float, free_gb: float) -> str:
    return (f"The model {model} would not fit in memory: converting it needs about {need_gb:.1f} GB and this "
            f"machine has {free_gb:.1f} GB free. Free memory, use a smaller model, or convert it on a larger "
            "machine and set CHATSCRIBE_MODEL to the converted folder.")


def adapter_without_base(adapter: str) -> str:
    return (f"The LoRA adapter {adapter} does not name its base model (base_model_name_or_path in "
            "adapter_config.json): set CHATSCRIBE_BASE_MODEL to the Whisper model it was trained on.")


def conversion_failed(model: str, why: str) -> str:
    return (f"The model {model} could not be converted for this engine ({why}); nothing was kept, so the "
            "next start tries again.")


def no_such_stored_model(name: str, folder: str) -> str:
    return (f"There is no model “{name[:200]}” in {folder}: `chatscribe models` lists the names that "
            "`chatscribe models remove` takes.")
