"""The PyTorch engine and the CTranslate2 -> transformers weight conversion, checked on the CPU."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from chatscribe.bots.engine_loader import pick_engine
from chatscribe.core.config import Settings
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.media import decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import screen
from tests.needs import require
from tests.wer import wer

# Opt-in outside CI (a large download); CI sets CHATSCRIBE_TEST_TORCH=1, and there a missing PyTorch fails the run.
_WANTED = os.environ.get("CHATSCRIBE_TEST_TORCH") == "1"
torch = require("torch", "PyTorch is not installed (pip install 'chatscribe[transformers]')", in_ci_too=_WANTED)
require("transformers", "transformers is not installed (pip install 'chatscribe[transformers]')", in_ci_too=_WANTED)

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@pytest.fixture(scope="module")
def tiny_torch(model_dir: Path):  # type: ignore[no-untyped-def]
    from chatscribe.core.engines.transformers_engine import TransformersWhisperEngine

    torch.set_num_threads(2)
    return TransformersWhisperEngine(resolve_model("tiny.en", model_dir), model_dir, device="cpu")


def _window(samples: np.ndarray) -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    features = FeatureExtractor(feature_size=80)(samples)[:, :3000]
    return np.pad(features, ((0, 0), (0, 3000 - features.shape[1])))[None].astype(np.float32)


def test_converted_weights_give_the_original_models_logits(
    tiny_torch, model_dir: Path, audio: Callable[[str], bytes]  # type: ignore[no-untyped-def]
) -> None:
    import ctranslate2

    source = resolve_model("tiny.en", model_dir).path
    original = ctranslate2.models.Whisper(str(source), device="cpu", compute_type="float32")
    converted = tiny_torch._model.float()
    features = _window(decode_audio(audio("jfk.flac"), max_duration_s=60).samples)
    prompt = [50257, 50362]  # <|startoftranscript|> <|notimestamps|> of the English-only vocabulary
    result = original.generate(ctranslate2.StorageView.from_array(features), [prompt], beam_size=1,
                               return_logits_vocab=True, max_length=64)[0]
    expected = result.sequences_ids[0]
    with torch.no_grad():
        logits = converted(input_features=torch.from_numpy(features),
                           decoder_input_ids=torch.tensor([prompt + expected])).logits[0]
    # one row per generated token plus the end-of-text step; CTranslate2 masks suppressed tokens
    original_steps = np.asarray(result.logits[0]).reshape(len(expected) + 1, -1)
    allowed = original_steps > -1e30
    converted_steps = logits.numpy()[len(prompt) - 1 :]
    assert np.abs(_log_softmax(original_steps, allowed) - _log_softmax(converted_steps, allowed)).max() < 0.05
    # teacher forcing: the converted model picks the original's token at every step
    picked = [int(np.argmax(np.where(ok, row, -np.inf))) for ok, row in zip(allowed, converted_steps, strict=True)]
    assert picked == [*expected, converted.config.eos_token_id]


def _log_softmax(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    masked = np.where(allowed, logits.astype(np.float64), -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    normalized = masked - top - np.log(np.exp(masked - top).sum(axis=-1, keepdims=True))
    return np.where(allowed, normalized, 0.0)


def test_transformers_engine_transcribes_a_batch_note_by_note(
    tiny_torch, audio: Callable[[str], bytes]  # type: ignore[no-untyped-def]
) -> None:
    notes = [decode_audio(audio(name), max_duration_s=600).samples
             for name in ("jfk_voice.ogg", "silence_10s.ogg", "hotwords.mp3")]
    speech, silence, hotwords = (screen(t, a) for t, a in zip(tiny_torch.transcribe_batch(notes, TranscribeOptions()),
                                                                 notes, strict=True))
    assert wer(JFK, speech.text) <= 0.1
    assert not silence.has_speech
    assert "folder" in hotwords.text.lower()
    assert "country" not in hotwords.text.lower()  # nothing of the first note leaks into the third
    ends = [s.end for s in speech.segments]
    assert ends == sorted(ends)
    assert ends[-1] <= speech.duration_s + 0.5


def test_engine_choice_follows_the_setting_and_the_hardware(tmp_path: Path) -> None:
    def choice(**values: object) -> tuple[str, str]:
        return pick_engine(Settings(_env_file=None, data_dir=tmp_path, **values))  # type: ignore[call-arg]

    assert choice(engine="transformers")[0] == "transformers"
    assert choice(engine="faster-whisper")[0] == "faster-whisper"
    kind, why = choice(engine="auto")
    if not torch.cuda.is_available():
        assert kind == "faster-whisper"
        assert "CUDA" in why


async def test_notes_waiting_together_go_through_the_transformers_engine_in_one_batch(
    tiny_torch, audio: Callable[[str], bytes]  # type: ignore[no-untyped-def]
) -> None:
    import asyncio

    from chatscribe.core.engines.batching import WholeBatches
    from chatscribe.core.jobs.runner import LocalRunner, Work
    from chatscribe.core.metrics import Metrics

    runner = LocalRunner(tiny_torch, slots=1, max_duration_s=600, metrics=Metrics(), batch_window_s=0.0)
    assert isinstance(runner.batcher, WholeBatches)
    names = ("jfk_voice.ogg", "hotwords.mp3", "random_bytes.ogg", "jfk.m4a")
    results = await asyncio.gather(
        *(runner.run(Work(f"chat-{i}", audio(name), 11.0, TranscribeOptions())) for i, name in enumerate(names)),
        return_exceptions=True,
    )
    jfk, hotwords, unreadable, jfk_again = results
    assert wer(JFK, jfk.text) <= 0.1  # type: ignore[union-attr]
    assert wer(JFK, jfk_again.text) <= 0.1  # type: ignore[union-attr]
    assert "folder" in hotwords.text.lower()  # type: ignore[union-attr]
    assert isinstance(unreadable, Exception)  # one bad file fails alone
