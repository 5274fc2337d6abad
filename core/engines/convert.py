"""Converting a CTranslate2 Whisper model back to transformers' layout, offline, once.

Hosts whose GPUs only have CUDA 13 cannot run CTranslate2 (it needs cuBLAS 12), but PyTorch runs there.
The bundled models are stored in float16, so their weights move to transformers' WhisperForConditional-
Generation without loss: this reads CTranslate2's model.bin, undoes its fused attention projections,
and writes a transformers model folder into the data dir (atomically, like the bundled base model), with
the tokenizer and preprocessor config beside it: a checkpoint in the layout training writes, which the
transformers engine, CTranslate2's own converter and peft all read.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
MULTILINGUAL_VOCAB_SIZE = 51865
"""Tokens in a multilingual Whisper vocabulary (large-v3's has one more); English-only ones are one shorter."""
CONVERTED_MARK = "chatscribe-converted.json"
"""Written last into a transformers copy, with its source: `chatscribe models` (stored.py) reads it too."""


def read_ct2(model_bin: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin (format version 6), aliases resolved."""
    with model_bin.open("rb") as fh:
        version = _unpack(fh, "I")
        if version != 6:
            raise ValueError(f"unsupported CTranslate2 model format version {version}")
        _string(fh)  # spec name
        _unpack(fh, "I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(_unpack(fh, "I")):
            name = _string(fh)
            shape = [_unpack(fh, "I") for _ in range(_unpack(fh, "B"))]
            type_id = _unpack(fh, "B")
            size = _unpack(fh, "I")
            data = fh.read(size)
            if type_id == 5:  # bfloat16: widen to float32
                raw = np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16
                variables[name] = raw.view(np.float32).reshape(shape)
            else:
                variables[name] = np.frombuffer(data, dtype=_DTYPES[type_id]).reshape(shape)
        for _ in range(_unpack(fh, "I")):
            alias, target = _string(fh), _string(fh)
            variables[alias] = variables[target]
    return variables


def to_transformers(variables: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """transformers state dict and the model's dimensions, from CTranslate2 variables."""
    state: dict[str, np.ndarray] = {}
    dims: dict[str, Any] = {
        "d_model": int(variables["encoder/conv1/weight"].shape[0]),
        "num_mel_bins": int(variables["encoder/conv1/weight"].shape[1]),
        "vocab_size": int(variables["decoder/embeddings/weight"].shape[0]),
        "encoder_layers": _count_layers(variables, "encoder"),
        "decoder_layers": _count_layers(variables, "decoder"),
        "encoder_attention_heads": int(variables["encoder/num_heads"]),
        "decoder_attention_heads": int(variables["decoder/num_heads"]),
        "encoder_ffn_dim": int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(variables["decoder/position_encodings/encodings"].shape[0]),
    }
    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        state[f"{hf}.embed_positions.weight"] = variables[f"{side}/position_encodings/encodings"]
        _norm(state, f"{hf}.layer_norm", variables, f"{side}/layer_norm")
        for i in range(dims[f"{side}_layers"]):
            ct, layer = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            _split_qkv(state, f"{layer}.self_attn", variables, f"{ct}/self_attention/linear_0")
            _linear(state, f"{layer}.self_attn.out_proj", variables, f"{ct}/self_attention/linear_1")
            _norm(state, f"{layer}.self_attn_layer_norm", variables, f"{ct}/self_attention/layer_norm")
            _linear(state, f"{layer}.fc1", variables, f"{ct}/ffn/linear_0")
            _linear(state, f"{layer}.fc2", variables, f"{ct}/ffn/linear_1")
            _norm(state, f"{layer}.final_layer_norm", variables, f"{ct}/ffn/layer_norm")
            if side == "decoder":
                _linear(state, f"{layer}.encoder_attn.q_proj", variables, f"{ct}/attention/linear_0")
                k, v = np.split(variables[f"{ct}/attention/linear_1/weight"], 2)
                _, v_bias = np.split(variables[f"{ct}/attention/linear_1/bias"], 2)
                state[f"{layer}.encoder_attn.k_proj.weight"] = k
                state[f"{layer}.encoder_attn.v_proj.weight"] = v
                state[f"{layer}.encoder_attn.v_proj.bias"] = v_bias
                _linear(state, f"{layer}.encoder_attn.out_proj", variables, f"{ct}/attention/linear_2")
                _norm(state, f"{layer}.encoder_attn_layer_norm", variables, f"{ct}/attention/layer_norm")
    for conv in ("conv1", "conv2"):
        state[f"model.encoder.{conv}.weight"] = variables[f"encoder/{conv}/weight"]
        state[f"model.encoder.{conv}.bias"] = variables[f"encoder/{conv}/bias"]
    state["model.decoder.embed_tokens.weight"] = variables["decoder/embeddings/weight"]
    state["proj_out.weight"] = variables["decoder/embeddings/weight"]
    return state, dims


def convert(ct2_dir: Path, target: Path) -> Path:
    """Write a transformers model folder for the CTranslate2 model in `ct2_dir` (once; atomic)."""
    if (target / CONVERTED_MARK).is_file() and (target / "tokenizer_config.json").is_file():
        return target
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    state, dims = to_transformers(read_ct2(ct2_dir / "model.bin"))
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    config = WhisperConfig(**dims, **_special_tokens(ct2_config, dims["vocab_size"]))
    model = WhisperForConditionalGeneration(config)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    _generation_config(model.generation_config, ct2_dir, ct2_config, config)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    for extra in ("tokenizer.json", "config.json", "vocabulary.json", "vocabulary.txt"):
        if (ct2_dir / extra).is_file():
            shutil.copy(ct2_dir / extra, partial / f"ct2-{extra}")
    _processor(ct2_dir / "tokenizer.json", dims["num_mel_bins"], partial)
    (partial / CONVERTED_MARK).write_text(json.dumps({"source": str(ct2_dir)}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def _processor(tokenizer_file: Path, mel_bins: int, folder: Path) -> None:
    """The tokenizer and feature extractor files transformers' WhisperProcessor saves with a checkpoint."""
    # transformers 5 names its one (tokenizers-backed) class WhisperTokenizer and keeps the Fast name as an alias
    from transformers import WhisperFeatureExtractor, WhisperTokenizerFast  # type: ignore[attr-defined]

    WhisperTokenizerFast(tokenizer_file=str(tokenizer_file)).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=mel_bins).save_pretrained(folder)


def _special_tokens(ct2_config: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    eot = 50257 if vocab_size >= MULTILINGUAL_VOCAB_SIZE else 50256
    sot = eot + 1
    return {
        "decoder_start_token_id": sot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "bos_token_id": eot,
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", [220, eot]),
        "forced_decoder_ids": None,
    }


def _generation_config(generation: Any, ct2_dir: Path, ct2_config: dict[str, Any], config: Any) -> None:
    """What transformers' Whisper generate() needs to pick language, task and timestamps."""
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_file(str(ct2_dir / "tokenizer.json"))
    multilingual = config.vocab_size >= MULTILINGUAL_VOCAB_SIZE
    generation.is_multilingual = multilingual
    if multilingual:  # transformers detects a language whenever lang_to_id exists, even empty
        generation.lang_to_id = {tokenizer.id_to_token(i): i for i in ct2_config.get("lang_ids", [])}
        generation.task_to_id = {task: tokenizer.token_to_id(f"<|{task}|>") for task in ("transcribe", "translate")}
    generation.no_timestamps_token_id = tokenizer.token_to_id("<|notimestamps|>")
    generation.decoder_start_token_id = config.decoder_start_token_id
    generation.eos_token_id = config.eos_token_id
    generation.pad_token_id = config.pad_token_id
    generation.suppress_tokens = config.suppress_tokens
    generation.begin_suppress_tokens = config.begin_suppress_tokens
    generation.max_initial_timestamp_index = 50
    generation.max_length = config.max_target_positions
    generation.alignment_heads = ct2_config.get("alignment_heads")
    generation.forced_decoder_ids = None
    generation._from_model_config = False  # else transformers rebuilds it from the model config on load


def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    return len({name.split("/")[1] for name in variables if name.startswith(f"{side}/layer_")} - {"layer_norm"})


def _split_qkv(state: dict[str, np.ndarray], prefix: str, variables: dict[str, np.ndarray], fused: str) -> None:
    q, k, v = np.split(variables[f"{fused}/weight"], 3)
    q_bias, _, v_bias = np.split(variables[f"{fused}/bias"], 3)  # Whisper's key projection has no bias
    state.update({f"{prefix}.q_proj.weight": q, f"{prefix}.k_proj.weight": k, f"{prefix}.v_proj.weight": v,
                  f"{prefix}.q_proj.bias": q_bias, f"{prefix}.v_proj.bias": v_bias})


def _linear(state: dict[str, np.ndarray], prefix: str, variables: dict[str, np.ndarray], name: str) -> None:
    state[f"{prefix}.weight"] = variables[f"{name}/weight"]
    state[f"{prefix}.bias"] = variables[f"{name}/bias"]


def _norm(state: dict[str, np.ndarray], prefix: str, variables: dict[str, np.ndarray], name: str) -> None:
    state[f"{prefix}.weight"] = variables[f"{name}/gamma"]
    state[f"{prefix}.bias"] = variables[f"{name}/beta"]


def _unpack(fh: BinaryIO, fmt: str) -> int:
    return int(struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0])


def _string(fh: BinaryIO) -> str:
    length = _unpack(fh, "H")
    return fh.read(length)[:-1].decode("utf-8")
