"""The one cache key of a transcript: what changes the words changes the key, and nothing else does."""

from __future__ import annotations

import hashlib

from chatscribe.core.keys import TranscriptKey, content_hash, options_digest, transcript_key
from chatscribe.core.options import TranscribeOptions


def test_options_digest_follows_what_changes_the_words() -> None:
    assert options_digest(TranscribeOptions(language="EN")) == options_digest(TranscribeOptions(language="en"))
    assert options_digest(TranscribeOptions(language="en")) != options_digest(TranscribeOptions(language="de"))
    assert options_digest(TranscribeOptions()) != options_digest(TranscribeOptions(task="translate"))
    assert options_digest(TranscribeOptions()) != options_digest(TranscribeOptions(vocabulary="ComfyUI"))
    assert options_digest(TranscribeOptions()) != options_digest(TranscribeOptions(temperature=0.0))
    assert options_digest(TranscribeOptions()) != options_digest(TranscribeOptions(word_timestamps=True))
    assert options_digest(TranscribeOptions(expected_languages=("EN", "de"))) == options_digest(
        TranscribeOptions(expected_languages=("en", "de")))


def test_the_digest_is_the_one_caches_already_hold() -> None:
    # Caches and Redis filled by earlier versions are keyed by this digest of the options as sorted JSON:
    # were it to change, every stored transcript would silently become a miss after an upgrade.
    written = ('{"expected_languages": ["de", "en"], "language": "de", "task": "transcribe", "temperature": null, '
               '"vocabulary": "Kubernetes", "word_timestamps": false}')
    options = TranscribeOptions(language="de", vocabulary="Kubernetes", expected_languages=("de", "en"))
    assert options_digest(options) == hashlib.sha256(written.encode()).hexdigest()[:16]


def test_a_key_reads_back_from_its_text_though_the_model_id_has_colons() -> None:
    media = b"\x00voice note bytes"
    key = transcript_key("base:int8:beam5:vad1", TranscribeOptions(language="de"), content_hash(media))
    assert key.content_hash == hashlib.sha256(media).hexdigest()
    assert str(key) == f"base:int8:beam5:vad1:{options_digest(TranscribeOptions(language='de'))}:{key.content_hash}"
    assert TranscriptKey.parse(str(key)) == key
    assert key.model_options == f"base:int8:beam5:vad1:{key.options_digest}"
