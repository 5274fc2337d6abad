"""The sentences people read, in one table, so every platform says the same thing the same way.

Plain text with no platform markup: each platform renders them in its own (escaping for Slack's
mrkdwn, Discord's markdown). Each is a `Sentence` (core/i18n.py): its English text as a str, rendered in
the reader's language by the edge that shows it (`localize`), from the gettext catalogs in core/locale.
Sentences that carry values are small functions; the values go in as `{name}` placeholders, so that a
translation can put them where its grammar wants them. A new sentence: write `Sentence("...")` here,
then add it to the catalogs (README, "Reply languages").
"""

from __future__ import annotations

from collections.abc import Iterable

from .i18n import Plural, Sentence, joined, language_name, localize
from .languages import display_name

# -- settings: refusals (the setting is not changed) -------------------------------------------------


LANGUAGE_CHOICES = Sentence("Language takes auto, a code such as en or de, or an English name such as French.")


def unknown_language(typed: str) -> Sentence:
    return Sentence("I don't know the language “{typed}”: use auto, a code such as en or de, "
                    "or an English name such as French.", typed=typed.strip()[:40])


def language_not_offered(typed: str, offered: Iterable[str]) -> Sentence:
    names = [language_name(code, display_name(code)) for code in offered]
    if len(names) == 1:
        return Sentence("“{typed}” is not one of the languages this service transcribes: use auto or {language}.",
                        typed=typed.strip()[:40], language=names[0])
    return Sentence("“{typed}” is not one of the languages this service transcribes: use auto, {languages} "
                    "or {last}.", typed=typed.strip()[:40], languages=joined(names[:-1], ", "), last=names[-1])


def on_or_off(setting: str) -> Sentence:
    return Sentence("{setting} takes on or off.", setting=SETTING_NAMES[setting])


FORMAT_CHOICES = Sentence("Format takes text, srt or vtt.")


def vocabulary_too_long(limit: int) -> Sentence:
    return Sentence("The vocabulary takes at most {limit} characters: list only the names and terms to expect.",
                    limit=limit)


def unknown_setting(typed: str, choices: Iterable[str]) -> Sentence:
    return Sentence("There is no setting “{typed}”: the settings are {choices}.", typed=typed.strip()[:30],
                    choices=", ".join(choices))


def replies_choices(languages: Iterable[str]) -> Sentence:
    """The `replies` setting given a language the bots do not answer in."""
    return Sentence("Replies takes auto (each person's app language) or one of {languages}.",
                    languages=", ".join(languages))


# -- settings: confirmations -------------------------------------------------------------------------

SETTING_NAMES = {
    "language": Sentence("Language"), "translate": Sentence("Translation to English"),
    "vocab": Sentence("Vocabulary"), "format": Sentence("Format"), "timestamps": Sentence("Timestamps"),
    "auto": Sentence("Automatic transcription"), "replies": Sentence("Replies"),
}
ON, OFF = Sentence("on"), Sentence("off")


def language_set(code: str | None) -> Sentence:
    if code:
        return Sentence("Language set to {language}.", language=language_name(code, display_name(code)))
    return Sentence("Language set to auto-detect.")


def replies_set(code: str | None) -> Sentence:
    if code:
        return Sentence("I'll reply in {language} here.", language=language_name(code, display_name(code)))
    return Sentence("I'll reply in each person's app language here (English when it doesn't say).")


def vocabulary_set(terms: str | None) -> Sentence:
    return Sentence("Vocabulary set to: {terms}", terms=terms) if terms else Sentence("Vocabulary cleared.")


def switched(setting: str, on: bool) -> Sentence:
    """Translation, timestamps and automatic transcription: "Timestamps: on." """
    return Sentence("{setting}: {state}.", setting=SETTING_NAMES[setting], state=_on(on))


def format_set(fmt: str) -> Sentence:
    extension = "txt" if fmt == "text" else fmt
    return Sentence("Format: {format}; a transcript sent as a file comes as a .{extension} file.", format=fmt,
                    extension=extension)


def settings_lines(*, language: str | None, translate: bool, fmt: str, timestamps: bool, vocabulary: str | None,
                   auto: bool | None, speakers: str = "off", replies: str | None = None) -> list[str]:
    """What `settings` shows, one line per setting; `auto` None leaves its line out (not offered there)."""
    lines: list[str] = [
        Sentence("Language: {language}", language=language_name(language, display_name(language)) if language
                 else Sentence("auto")),
        Sentence("Translate to English: {state}", state=_on(translate)),
        Sentence("Format: {format}", format=fmt),
        Sentence("Timestamps: {state}", state=_on(timestamps)),
        Sentence("Speaker labels: {state}", state=_speakers_state(speakers)),
        Sentence("Vocabulary: {terms}", terms=vocabulary) if vocabulary else Sentence("Vocabulary: (none)"),
    ]
    if auto is not None:
        lines.append(Sentence("Automatic transcription: {state}", state=_on(auto)))
    lines.append(Sentence("Replies: {language}", language=language_name(replies, display_name(replies))) if replies
                 else Sentence("Replies: each person's app language"))
    return lines


def _on(flag: bool) -> Sentence:
    return ON if flag else OFF


def _speakers_state(mode: str) -> Sentence:
    return {"on": ON, "off": OFF}.get(mode) or Sentence("auto")


# -- answers: delivery, progress, no speech, errors ----------------------------------------------------

NO_SPEECH = Sentence("No speech detected.")
INTERNAL_ERROR = Sentence("Something went wrong while transcribing that file; please try again later.")
BUSY = Sentence("Too many recordings are waiting right now")
"""Busy's reason when the queue or the media budget is full; Busy adds when to try again."""
RATE_LIMITED = Sentence("You've sent a lot in a short time")
"""Busy's reason past CHATSCRIBE_USER_RATE (counted here or across front ends)."""
BUSY_DEFAULT = Sentence("I'm busy right now")
TRUNCATED = Sentence("The file ended early (perhaps an interrupted upload): this is the part that was there.")
DOUBTFUL = Sentence("Some parts were hard to make out and may be wrong: check the passages marked [?].")
"""The short marker on an answer that holds doubtful (low-confidence) passages."""
DOUBTFUL_MARK = "[?]"
"""Put before each doubtful passage in txt, srt and vtt files (a mark, the same in every language)."""
FULL_TRANSCRIPT_ATTACHED = Sentence("The full transcript is in the attached file.")
RESTARTING = Sentence("I'm restarting: please send that again in a minute.")
WENT_WRONG = Sentence("Something went wrong on my side; please try again later.")
"""A command that failed for a reason of ours (logged with its traceback, never shown)."""
FILE_DELETED = Sentence("That file was deleted before I could transcribe it.")


def full_transcript_caption(characters: int) -> Sentence:
    return Plural("Full transcript, {count} character.", "Full transcript, {count} characters.", characters,
                  count=format(characters, ","))


def busy(reason: str, retry_after_s: float) -> Sentence:
    minutes = max(1, round(retry_after_s / 60))
    return Plural("{reason}: please try again in about {n} minute.", "{reason}: please try again in about {n} minutes.",
                  minutes, reason=reason)


def download_failed(platform: str) -> Sentence:
    """`platform` as people name it: Telegram, Discord, Slack."""
    return Sentence("I couldn't download that file from {platform}; please send it again.", platform=platform)


def progress(stage: str, *, position: int | None = None, fraction: float = 0.0, eta_s: float | None = None,
             detail: str | None = None, file_name: str | None = None) -> str:
    """The status message while a recording waits ("Waiting to transcribe (position 2 in the queue)…")
    or runs ("Transcribing… 40%, about 20 s left")."""
    if detail:  # e.g. the transcription workers are out of reach: say so rather than a stale position
        return detail
    name = f" {file_name}" if file_name else ""
    if stage == "queued":
        place = Sentence(" (position {position} in the queue)", position=position) if position else ""
        return Sentence("Waiting to transcribe{name}{place}{eta}…", name=name, place=place, eta=_eta(eta_s))
    percent = int(max(0.0, min(1.0, fraction)) * 100)
    return Sentence("Transcribing{name}… {percent}%{eta}", name=name, percent=percent, eta=_eta(eta_s))


def progress_starts(file_name: str | None, locale: str | None) -> tuple[str, ...]:
    """How a status message for this file begins in `locale` (the job's reply language), to find one again
    in a thread after a restart; a platform escapes each as it escapes the status it sends."""
    name = f" {file_name}" if file_name else ""
    starts = Sentence("Transcribing{name}…", name=name), Sentence("Waiting to transcribe{name}", name=name)
    return tuple(localize(start, locale) for start in starts)


def _eta(eta_s: float | None) -> str:
    if not eta_s or eta_s < 5:
        return ""
    if eta_s < 90:
        return Sentence(", about {seconds} s left", seconds=format(round(eta_s / 5) * 5, ".0f"))
    return Sentence(", about {minutes} min left", minutes=format(round(eta_s / 60), ".0f"))


# -- speaker labels (core/speakers) -------------------------------------------------------------------

SPEAKERS_NOT_TOLD_APART = Sentence("Speakers could not be told apart in this recording, so the transcript has "
                                   "no speaker labels.")
SPEAKERS_UNAVAILABLE = Sentence("Speakers could not be told apart: speaker labelling is not installed on this "
                                "service (the chatscribe[speakers] extra), so the transcript has no speaker labels.")
SPEAKER_MODE_CHOICES = Sentence("Speakers takes on, off or auto.")


def speakers_set(mode: str) -> Sentence:
    """`speakers on|off|auto`: what the next recordings here get."""
    if mode == "on":
        return Sentence("Speaker labels: on; a recording with several voices says who speaks.")
    if mode == "auto":
        return Sentence("Speaker labels: auto; long recordings (calls, meetings) say who speaks, voice notes "
                        "don't.")
    return Sentence("Speaker labels: off.")


def speaker_counts_refused(least: int | None, most: int | None, limit: int) -> Sentence:
    """min/max speakers out of range or the wrong way round."""
    return Sentence("The number of speakers must be between 1 and {limit}, and the least no more than the most "
                    "(asked: {least} to {most}).", limit=limit, least=_count_or_any(least), most=_count_or_any(most))


def _count_or_any(count: int | None) -> str:
    return Sentence("any") if count is None else str(count)


def known_speakers_refused(limit: int) -> Sentence:
    return Sentence("Known speakers take a name and a 2–10 s recording of that voice each, at most {limit} of "
                    "them, with different names.", limit=limit)


# -- your own model (core/engines/checkpoints.py; read by the operator, at start or in the CLI) ----------

FINETUNE_EXTRA = "pip install 'chatscribe[finetune]'"


def converter_missing(model: str, missing: str) -> Sentence:
    """A transformers checkpoint or LoRA adapter, but the packages that convert or merge it are absent."""
    return Sentence("The model {model} is a transformers checkpoint or LoRA adapter, and converting it needs "
                    "{missing}, which is not installed: {install}.", model=model, missing=missing,
                    install=FINETUNE_EXTRA)


def not_a_whisper_model(folder: str, why: str) -> Sentence:
    return Sentence("The folder {folder} is not a Whisper model ({why}): set CHATSCRIBE_MODEL to a CTranslate2 "
                    "model folder (model.bin and config.json), a transformers Whisper checkpoint (config.json, "
                    "model.safetensors or pytorch_model.bin, the tokenizer), a LoRA adapter folder, or a model "
                    "name.", folder=folder, why=why)


def model_too_large(model: str, need_gb: float, free_gb: float) -> Sentence:
    return Sentence("The model {model} would not fit in memory: converting it needs about {need} GB and this "
                    "machine has {free} GB free. Free memory, use a smaller model, or convert it on a larger "
                    "machine and set CHATSCRIBE_MODEL to the converted folder.", model=model,
                    need=format(need_gb, ".1f"), free=format(free_gb, ".1f"))


def adapter_without_base(adapter: str) -> Sentence:
    return Sentence("The LoRA adapter {adapter} does not name its base model (base_model_name_or_path in "
                    "adapter_config.json): set CHATSCRIBE_BASE_MODEL to the Whisper model it was trained on.",
                    adapter=adapter)


def conversion_failed(model: str, why: str) -> Sentence:
    return Sentence("The model {model} could not be converted for this engine ({why}); nothing was kept, so the "
                    "next start tries again.", model=model, why=why)


def no_such_stored_model(name: str, folder: str) -> Sentence:
    return Sentence("There is no model “{name}” in {folder}: `chatscribe models` lists the names that "
                    "`chatscribe models remove` takes.", name=name[:200], folder=folder)


# -- translation ---------------------------------------------------------------------------------------


def cannot_translate(model: str) -> Sentence:
    """Translation asked of an English-only model: said before anything is transcribed."""
    return Sentence("I can't translate with this service's English-only model ({model}): turn translation off, or "
                    "ask whoever runs the service for a multilingual model, such as CHATSCRIBE_MODEL=base.",
                    model=model)
