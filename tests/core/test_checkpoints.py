"""Your own model: a Whisper checkpoint in the layout training writes, and LoRA adapters on it.

The checkpoint is the bundled `base` written in transformers' layout by core/engines/convert.py: a real
model, converted back with CTranslate2's own converter, must say word for word what the bundled one says.
One checkpoint and one conversion (by a real `chatscribe run`) are shared by the module: conversions of
base take a while on two cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from chatscribe.bots.engine_loader import build_engine, prepare_model
from chatscribe.core.config import Settings
from chatscribe.core.engines.checkpoints import MARK, ensure_fits, parameter_count
from chatscribe.core.engines.convert import convert
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.errors import ModelTooLarge, ModelUnavailable
from chatscribe.core.media import decode_audio
from chatscribe.core.options import TranscribeOptions
from tests.needs import require
from tests.ports import free_port
from tests.wer import wer

# Opt-in outside CI, as the transformers engine's tests; CI sets CHATSCRIBE_TEST_TORCH=1 and installs them.
_WANTED = os.environ.get("CHATSCRIBE_TEST_TORCH") == "1"
torch = require("torch", "PyTorch is not installed (pip install 'chatscribe[finetune]')", in_ci_too=_WANTED)
require("transformers", "transformers is not installed (pip install 'chatscribe[finetune]')", in_ci_too=_WANTED)
peft = require("peft", "peft is not installed (pip install 'chatscribe[finetune]')", in_ci_too=_WANTED)

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
ROOT = Path(__file__).resolve().parents[2]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _env(data_dir: Path, **values: str) -> dict[str, str]:
    """The environment of a `chatscribe` process: this one's minus any CHATSCRIBE_ or platform setting."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CHATSCRIBE_", "TELEGRAM_", "DISCORD_", "SLACK_"))}
    env.update(CHATSCRIBE_DATA_DIR=str(data_dir), CHATSCRIBE_DEVICE="cpu", HF_HUB_OFFLINE="1", **values)
    return env


def _chatscribe(args: list[str], env: dict[str, str], cwd: Path, *, blocked: tuple[str, ...] = (),
                timeout: float = 280) -> subprocess.CompletedProcess[str]:
    """`chatscribe ARGS` as a person runs it; `blocked` modules cannot be imported (an extra not installed)."""
    code = "".join(f"sys.modules[{name!r}] = None; " for name in blocked)
    program = f"import sys; {code}from chatscribe.bots.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", program, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """The bundled base in the transformers layout, as a fine-tuning run leaves it (no CTranslate2 files)."""
    torch.set_num_threads(2)
    folder = convert(resolve_model("base", model_dir).path, tmp_path_factory.mktemp("training") / "whisper-base-ft")
    for leftover in [*folder.glob("ct2-*"), folder / "chatscribe-converted.json"]:
        leftover.unlink()
    return folder


@dataclass(frozen=True)
class FirstStart:
    data_dir: Path
    reasons: list[list[str]]
    """Every /readyz answer's reasons while the service started, in order."""
    log: str


@pytest.fixture(scope="module")
def first_start(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> FirstStart:
    """`chatscribe run` with the checkpoint as CHATSCRIBE_MODEL, watched through /readyz until it is ready."""
    home = tmp_path_factory.mktemp("service")
    port = free_port()
    env = _env(home / "data", CHATSCRIBE_MODEL=str(checkpoint), CHATSCRIBE_HTTP_PORT=str(port),
               CHATSCRIBE_WORKERS="1")
    log_file = (home / "log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "chatscribe", "run"], env=env, cwd=home, stdout=log_file,
                               stderr=subprocess.STDOUT)
    reasons: list[list[str]] = []
    try:
        deadline = time.monotonic() + 280
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                    reasons.append([])
                    break
            except urllib.error.HTTPError as answer:
                seen = json.loads(answer.read()).get("reasons", [])
                if not reasons or reasons[-1] != seen:
                    reasons.append(seen)
            except OSError:  # not listening yet
                pass
            time.sleep(0.1)  # polling interval of a probe, not a wait for a result
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log_file.seek(0)
        log = log_file.read()
        log_file.close()
    assert reasons, f"the service never answered /readyz: {log[-3000:]}"
    assert reasons[-1] == [], f"the service did not become ready: {log[-3000:]}"
    return FirstStart(home / "data", reasons, log)


@pytest.fixture(scope="module")
def bundled_words(base_engine: FasterWhisperEngine, audio: Callable[[str], bytes]) -> list[str]:
    transcript = base_engine.transcribe(decode_audio(audio("jfk.flac"), max_duration_s=60).samples,
                                        TranscribeOptions())
    assert wer(JFK, transcript.text) <= 0.1
    return _words(transcript.text)


def _source(folder: Path) -> str | None:
    return json.loads((folder / MARK).read_text()).get("source") if (folder / MARK).is_file() else None


def _settings(data_dir: Path, model: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, model=str(model), device="cpu", workers=1,  # type: ignore[call-arg]
                    **values)


def test_a_checkpoint_converts_once_while_readyz_says_so_and_says_what_the_bundled_model_says(
    first_start: FirstStart, checkpoint: Path, bundled_words: list[str], audio: Callable[[str], bytes]
) -> None:
    assert ["converting model"] in first_start.reasons, first_start.reasons
    assert first_start.reasons.index(["converting model"]) < len(first_start.reasons) - 1  # then ready
    assert "converting" in first_start.log  # progress in the log
    assert "converted" in first_start.log
    converted = [p for p in (first_start.data_dir / "models").iterdir() if _source(p) == str(checkpoint)]
    assert len(converted) == 1
    folder = converted[0]
    assert folder.name.startswith("whisper-base-ft.ct2-int8-")
    assert json.loads((folder / "preprocessor_config.json").read_text())["feature_size"] == 80
    assert (folder / "tokenizer.json").is_file()
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in folder.iterdir())
    written = (folder / "model.bin").stat().st_mtime_ns

    # A second start (here, in this process) finds the conversion and does not convert again.
    settings = _settings(first_start.data_dir, checkpoint)
    model = prepare_model(settings)
    assert model.path == folder
    assert not model.converted_now
    assert model.checkpoint == checkpoint
    assert (folder / "model.bin").stat().st_mtime_ns == written
    engine = build_engine(settings, model)
    transcript = engine.transcribe(decode_audio(audio("jfk.flac"), max_duration_s=60).samples, TranscribeOptions())
    assert _words(transcript.text) == bundled_words


def test_a_changed_checkpoint_converts_again(first_start: FirstStart, checkpoint: Path,
                                             tmp_path: Path) -> None:
    copy = tmp_path / checkpoint.name
    shutil.copytree(checkpoint, copy)
    settings = _settings(first_start.data_dir, copy)
    same = prepare_model(settings)
    assert not same.converted_now, "the same content is the same model, wherever it lies"
    weights = copy / "model.safetensors"
    with weights.open("r+b") as fh:  # the lowest mantissa byte of the last float32 of the last tensor
        fh.seek(-4, os.SEEK_END)
        byte = fh.read(1)[0]
        fh.seek(-4, os.SEEK_END)
        fh.write(bytes([byte ^ 0x01]))
    changed = prepare_model(settings)
    assert changed.converted_now
    assert changed.path != same.path
    assert (changed.path / "model.bin").is_file()
    assert same.path.is_dir(), "the original checkpoint's conversion is still its own"


def _adapter(checkpoint: Path, folder: Path, *, nonzero: bool) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(checkpoint)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    if nonzero:  # as after training: B is no longer the zeros it starts from
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, parameter in lora.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    lora.save_pretrained(folder)
    return folder


def test_a_lora_adapter_with_zero_b_says_the_same_words_through_the_cli(
    first_start: FirstStart, checkpoint: Path, bundled_words: list[str], audio_dir: Path, tmp_path: Path
) -> None:
    adapter = _adapter(checkpoint, tmp_path / "my-lora", nonzero=False)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(checkpoint)
    done = _chatscribe(["transcribe", str(audio_dir / "jfk.flac")],
                       _env(first_start.data_dir, CHATSCRIBE_MODEL=str(adapter)), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "converting the LoRA adapter" in done.stderr  # progress while it merges, then converts
    assert _words(done.stdout) == bundled_words
    assert [p for p in (first_start.data_dir / "models").glob("my-lora.merged-*") if (p / MARK).is_file()]
    assert [p for p in (first_start.data_dir / "models").glob("my-lora.ct2-int8-*") if (p / MARK).is_file()]


def test_a_trained_lora_adapter_changes_the_targeted_weights_when_merged(
    first_start: FirstStart, checkpoint: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    adapter = _adapter(checkpoint, tmp_path / "trained-lora", nonzero=True)
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = None  # the base comes from CHATSCRIBE_BASE_MODEL instead
    config_file.write_text(json.dumps(config))
    merged = resolve_model(str(adapter), first_start.data_dir, base_model=str(checkpoint))
    assert merged.layout == "transformers"
    assert merged.converted_now
    before, after = load_file(checkpoint / "model.safetensors"), load_file(merged.path / "model.safetensors")
    adapter_weights = load_file(adapter / "adapter_model.safetensors")
    name = "model.decoder.layers.2.self_attn.q_proj"
    a = next(v for k, v in adapter_weights.items() if "decoder.layers.2.self_attn.q_proj.lora_A" in k)
    b = next(v for k, v in adapter_weights.items() if "decoder.layers.2.self_attn.q_proj.lora_B" in k)
    change = after[f"{name}.weight"] - before[f"{name}.weight"]
    assert abs(change).max() > 1e-3
    assert abs(change - (8 / 4) * b @ a).max() < 1e-5  # W + (alpha / r) · B·A, nothing else
    untouched = "model.decoder.layers.2.self_attn.k_proj.weight"
    assert (after[untouched] == before[untouched]).all()


def test_a_folder_that_is_not_whisper_gets_its_sentence(audio_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bert-base"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (folder / "model.safetensors").write_bytes(_EMPTY_SAFETENSORS)
    done = _chatscribe(["transcribe", str(audio_dir / "jfk.flac"), "--model", str(folder)],
                       _env(tmp_path / "data"), tmp_path)
    assert done.returncode == 2
    assert f"The folder {folder} is not a Whisper model (its config.json describes a bert model)" in done.stderr
    assert "Traceback" not in done.stderr


_WHISPER_CONFIG = json.dumps({"model_type": "whisper"})
_EMPTY_SAFETENSORS = b"\x02\x00\x00\x00\x00\x00\x00\x00{}"


@pytest.mark.parametrize(("files", "why"), [
    ({"config.json": _WHISPER_CONFIG}, "it has a Whisper config.json but no model.safetensors or pytorch_model.bin"),
    ({"config.json": _WHISPER_CONFIG, "model.safetensors": _EMPTY_SAFETENSORS}, "it has no tokenizer"),
    ({"notes.txt": "a training log"}, "it has neither model.bin nor a transformers config.json"),
    ({"adapter_config.json": json.dumps({"base_model_name_or_path": "."}), "adapter_model.safetensors":
      _EMPTY_SAFETENSORS}, "the adapter names itself as its base model"),
])
def test_a_folder_short_of_a_model_is_told_what_it_lacks(
    files: dict[str, str | bytes], why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    monkeypatch.chdir(folder)  # "." names the adapter's own folder
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(str(folder), tmp_path / "data", allow_download=False)
    assert caught.value.user_message.startswith(f"The folder {folder} is not a Whisper model ({why}")
    assert not (tmp_path / "data" / "models").exists(), "nothing written for a folder that is no model"


def test_a_file_named_as_the_model_folder_is_told_it_is_no_folder(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    file.write_bytes(_EMPTY_SAFETENSORS)
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(str(file), tmp_path / "data", allow_download=False)
    message = caught.value.user_message
    assert message.startswith(f"The folder {file} is not a Whisper model (it is a file, not a folder)")


@pytest.mark.parametrize(("blocked", "named"), [(("torch",), "PyTorch"), (("peft",), "peft")])
def test_a_missing_extra_is_named_with_what_to_install(
    blocked: tuple[str, ...], named: str, checkpoint: Path, audio_dir: Path, tmp_path: Path
) -> None:
    model = checkpoint
    if blocked == ("peft",):  # merging an adapter needs peft
        model = tmp_path / "adapter"
        model.mkdir()
        (model / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4,
                                                                "base_model_name_or_path": str(checkpoint)}))
        (model / "adapter_model.safetensors").write_bytes(_EMPTY_SAFETENSORS)
    done = _chatscribe(["transcribe", str(audio_dir / "jfk.flac"), "--model", str(model)], _env(tmp_path / "data"),
                       tmp_path, blocked=blocked)
    assert done.returncode == 2
    assert f"needs {named}, which is not installed: pip install 'chatscribe[finetune]'." in done.stderr
    assert "Traceback" not in done.stderr
    assert not [p for p in (tmp_path / "data" / "models").glob("*") if not p.name.startswith(".")]


def test_an_adapter_on_the_bundled_base_without_pytorch_names_the_adapter_and_pytorch(
    audio_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "base-lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "base"}))
    (adapter / "adapter_model.safetensors").write_bytes(_EMPTY_SAFETENSORS)
    done = _chatscribe(["transcribe", str(audio_dir / "jfk.flac"), "--model", str(adapter)], _env(tmp_path / "data"),
                       tmp_path, blocked=("torch",))
    assert done.returncode == 2
    assert (f"The model {adapter} is a transformers checkpoint or LoRA adapter, and converting it needs PyTorch, "
            "which is not installed") in done.stderr
    assert "Traceback" not in done.stderr


def test_models_lists_what_the_data_dir_holds_and_removes_one(
    first_start: FirstStart, model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    resolve_model("base", data)  # the bundled base, assembled into this data dir
    converted = next(p for p in (first_start.data_dir / "models").iterdir() if ".ct2-" in p.name)
    shutil.copytree(converted, data / "models" / converted.name)
    env = _env(data)

    listed = _chatscribe(["models"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert set(lines) == {"base", converted.name}
    assert "MB  bundled: " in lines["base"]
    assert "MB  converted: CTranslate2 (int8) from " in lines[converted.name]

    escape = _chatscribe(["models", "remove", "../../etc"], env, tmp_path)
    assert escape.returncode == 2
    assert "There is no model “../../etc”" in escape.stderr
    assert (data / "models" / "base").is_dir()

    removed = _chatscribe(["models", "remove", converted.name], env, tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {converted.name} (converted" in removed.stdout
    assert not (data / "models" / converted.name).exists()
    again = _chatscribe(["models"], env, tmp_path)
    assert converted.name not in again.stdout
    assert "base" in again.stdout


def test_a_model_too_large_for_the_free_memory_is_refused_with_its_sentence(checkpoint: Path) -> None:
    parameters = parameter_count(checkpoint)
    assert 70_000_000 < parameters < 75_000_000  # Whisper base: 72.6 M, from the safetensors header alone
    with pytest.raises(ModelTooLarge) as caught:
        ensure_fits(checkpoint, "whisper-base-ft", free_bytes=200_000_000)
    assert caught.value.user_message.startswith("The model whisper-base-ft would not fit in memory: converting it "
                                                "needs about 0.7 GB and this machine has 0.2 GB free.")
    ensure_fits(checkpoint, "whisper-base-ft", free_bytes=8_000_000_000)


def test_doctor_says_where_the_model_came_from_and_where_its_converted_copy_lives(
    first_start: FirstStart, checkpoint: Path, tmp_path: Path
) -> None:
    done = _chatscribe(["doctor"], _env(first_start.data_dir, CHATSCRIBE_MODEL=str(checkpoint)), tmp_path)
    assert "Traceback" not in done.stdout + done.stderr
    copy = next(p for p in (first_start.data_dir / "models").iterdir() if _source(p) == str(checkpoint))
    assert (f"model         {checkpoint} from local folder, transformers checkpoint\n"
            f"              {copy}\n") in done.stdout
    assert (f"converted     from {checkpoint}\n              to {copy} (converted once, reused; "
            "`chatscribe models` lists the copies)") in done.stdout
    assert "converting" not in done.stderr  # the doctor looks; it does not convert again


def test_the_transformers_engine_loads_a_checkpoint_as_it_is(
    checkpoint: Path, tmp_path: Path, audio: Callable[[str], bytes]
) -> None:
    from chatscribe.core.engines.transformers_engine import TransformersWhisperEngine

    model = resolve_model(str(checkpoint), tmp_path / "data")
    assert model.layout == "transformers"
    engine = TransformersWhisperEngine(model, tmp_path / "data", device="cpu")
    transcript = engine.transcribe_batch([decode_audio(audio("jfk.flac"), max_duration_s=60).samples],
                                         TranscribeOptions())[0]
    assert wer(JFK, transcript.text) <= 0.1
    assert not (tmp_path / "data" / "models").exists(), "nothing converted, nothing copied"


def test_a_checkpoint_shaped_like_large_v3_keeps_its_128_mel_bins(checkpoint: Path, tmp_path: Path) -> None:
    """A large-v3 fine-tune reads 128 mel bins; this one (random, tiny, no preprocessor config saved, no
    language table in its generation config) must still come out as faster-whisper needs it."""
    from faster_whisper import WhisperModel
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    source = tmp_path / "tiny-v3-shape"
    config = WhisperConfig(num_mel_bins=128, d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=51865)
    WhisperForConditionalGeneration(config).save_pretrained(source)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(checkpoint / name, source / name)
    model = prepare_model(_settings(tmp_path / "data", source))
    assert json.loads((model.path / "preprocessor_config.json").read_text())["feature_size"] == 128
    loaded = WhisperModel(str(model.path), device="cpu", compute_type="int8", cpu_threads=2)
    assert loaded.feature_extractor.mel_filters.shape[0] == 128
    language, _, ranked = loaded.detect_language(np.zeros(16000, dtype=np.float32))
    assert len(ranked) == 99  # every language of the tokenizer, none lost in the conversion


def test_a_checkpoint_that_cannot_be_converted_gets_a_sentence_and_leaves_nothing(
    checkpoint: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "half-copied"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(checkpoint / name, broken / name)
    (broken / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes()[:100_000])
    with pytest.raises(ModelUnavailable) as caught:
        prepare_model(_settings(tmp_path / "data", broken))
    message = caught.value.user_message
    assert message.startswith(f"The model {broken} could not be converted for this engine (")
    assert message.endswith("nothing was kept, so the next start tries again.")
    assert not [p for p in (tmp_path / "data" / "models").iterdir() if p.name != ".hashes"]


def test_an_adapter_that_names_no_base_asks_for_chatscribe_base_model(tmp_path: Path) -> None:
    adapter = tmp_path / "orphan-lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": None}))
    (adapter / "adapter_model.safetensors").write_bytes(_EMPTY_SAFETENSORS)
    with pytest.raises(ModelUnavailable) as caught:
        prepare_model(_settings(tmp_path / "data", adapter))
    assert caught.value.user_message == (
        f"The LoRA adapter {adapter} does not name its base model (base_model_name_or_path in adapter_config.json): "
        "set CHATSCRIBE_BASE_MODEL to the Whisper model it was trained on.")
