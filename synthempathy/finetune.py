"""LoRA supervised fine-tuning on the SYNTHEMPATHY (explanation, response) pairs.

The paper fine-tunes Mistral-7B-Instruct on the corpus; the CPU default fine-tunes the embedded
SmolLM2-135M-Instruct GGUF, and ``device: auto`` runs the same code in bf16 on a GPU. The loss
covers the assistant reply only: prompt and padding positions carry the label -100. On CPU a
seed fixes everything (LoRA init, dropout, data order), so the saved adapter is byte-identical
on rerun.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from synthempathy.errors import InputError
from synthempathy.io import atomic_dir
from synthempathy.llm.models import file_sha256, resolve_model_path
from synthempathy.params import FinetuneParams
from synthempathy.paths import cache_root

IGNORE_INDEX = -100  # label of positions the loss skips (torch cross-entropy's ignore_index)
MIN_RESPONSE_TOKENS = 16  # an example whose prompt leaves less room than this teaches nothing
WARMUP_SHARE = 0.1  # linear warm-up over the first 10% of steps, then linear decay to 0
MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE_INDEX on prompt tokens, the token id on response tokens


# ---------------------------------------------------------------- model loading


def select_device(name: str, threads: int) -> torch.device:
    """``auto``: CUDA when present, else CPU; ``threads`` torch CPU threads.

    The thread count is pinned because it changes the order of float sums, so the weights; on
    shared cores one thread also beats several that spin waiting for each other.
    """
    torch.set_num_threads(threads)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("finetune.device=cuda: no CUDA device visible; use auto or cpu")
    return torch.device(name)


def model_dtype(device: torch.device) -> torch.dtype:
    # bf16 halves a 7B model's memory on GPU; CPU keeps fp32 (the 135M default fits easily, and
    # not every CPU has fast bf16, so fp32 gives the same numbers on more machines).
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def resolve_base_model(spec: str) -> Path:
    """``default`` or a .gguf path -> the GGUF file; otherwise a local Hugging Face model directory."""
    if spec == "default" or spec.endswith(".gguf"):
        return resolve_model_path(spec)
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise InputError(f"finetune.base_model={spec}: neither a .gguf file nor a model directory with config.json; fix finetune.base_model")
    return path


def gguf_as_hf_dir(gguf: Path, dtype: torch.dtype) -> Path:
    """The GGUF dequantised once into a plain model directory.

    transformers needs ~45 s on 2 cores to load a GGUF (mostly parsing its metadata in Python);
    the saved directory loads in under a second. Keyed by the file's sha256, dtype and
    transformers version, so another model or library never reuses a stale conversion.
    """
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    key = f"{file_sha256(gguf)[:16]}-{str(dtype).removeprefix('torch.')}-transformers{transformers.__version__}"
    target = cache_root() / "base_models" / key
    if not (target / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
        # The weights are dequantised tensors now; without the GGUF marker save_pretrained accepts them.
        model.hf_quantizer = None
        del model.config.quantization_config
        with atomic_dir(target) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    return target


def load_base(spec: str, device: torch.device):
    """(model, tokenizer) of ``finetune.base_model`` on ``device``; nothing is downloaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = model_dtype(device)
    path = resolve_base_model(spec)
    directory = gguf_as_hf_dir(path, dtype) if path.is_file() else path
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked out everywhere it is used
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).to(device)
    return model, tokenizer


# ---------------------------------------------------------------- data


def prompt_text(tokenizer, messages: Sequence[dict]) -> str:
    """The chat-template text a model sees before it replies to ``messages``."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def encode_example(tokenizer, messages: Sequence[dict], max_length: int) -> Example | None:
    """Token ids of a chat whose last turn is the assistant's, with response-only labels.

    The whole chat is tokenised at once (as the model reads it); a token belongs to the prompt
    when it starts inside the generation-prompt text. The response tail is cut at
    ``max_length``; None when the prompt leaves fewer than MIN_RESPONSE_TOKENS.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's response")
    prompt = prompt_text(tokenizer, messages[:-1])
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently with and without the response")
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    n_prompt = sum(start < len(prompt) for start, _ in encoded["offset_mapping"])
    if max_length - n_prompt < min(MIN_RESPONSE_TOKENS, len(ids) - n_prompt):
        return None
    ids = ids[:max_length]
    return Example(tuple(ids), tuple([IGNORE_INDEX] * n_prompt + ids[n_prompt:]))


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; padding is masked out of attention and of the loss."""
    width = max(len(e.input_ids) for e in examples)
    gap = [width - len(e.input_ids) for e in examples]
    return {
        "input_ids": torch.tensor([list(e.input_ids) + [pad_id] * g for e, g in zip(examples, gap, strict=True)]),
        "attention_mask": torch.tensor([[1] * len(e.input_ids) + [0] * g for e, g in zip(examples, gap, strict=True)]),
        "labels": torch.tensor([list(e.labels) + [IGNORE_INDEX] * g for e, g in zip(examples, gap, strict=True)]),
    }


def planned_steps(n_examples: int, batch_size: int, epochs: int, max_steps: int | None) -> int:
    """``max_steps`` when set (cycling over epochs as needed), else whole epochs."""
    return max_steps if max_steps is not None else epochs * math.ceil(n_examples / batch_size)


def batch_schedule(n_examples: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Example indices of each step: a seeded shuffle per epoch, then consecutive batches."""
    rng = random.Random(seed)
    batches: list[list[int]] = []
    while len(batches) < steps:
        order = list(range(n_examples))
        rng.shuffle(order)
        batches += [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]
    return batches[:steps]


# ---------------------------------------------------------------- training


def make_deterministic(seed: int) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS needs it
    torch.manual_seed(seed)
    # warn_only: a CUDA op without a deterministic kernel should not stop a GPU run.
    torch.use_deterministic_algorithms(True, warn_only=True)


def warmup_linear(total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up, then linear decay towards 0."""
    warmup = max(1, round(WARMUP_SHARE * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return (total_steps - step) / max(1, total_steps - warmup)

    return factor


def train_lora(model, examples: Sequence[Example], params: FinetuneParams, pad_id: int):
    """Wrap ``model`` in LoRA adapters and train them; return (peft model, loss per step)."""
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise InputError("finetune: no training example fits finetune.max_length; raise it")
    device = next(model.parameters()).device
    make_deterministic(params.seed)
    config = LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=0.0)
    batches = batch_schedule(len(examples), params.batch_size, planned_steps(len(examples), params.batch_size, params.epochs, params.max_steps), params.seed)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(len(batches)))
    losses = []
    for indices in tqdm(batches, desc="finetune", unit="step"):
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in indices], pad_id).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return model, losses


def save_adapter(model, directory: Path, base_model: str) -> None:
    """Adapter weights and config only, written atomically, with no machine-specific path."""
    config = model.peft_config["default"]
    config.base_model_name_or_path = base_model  # the params value, not this machine's path
    config.target_modules = sorted(config.target_modules)  # peft keeps a set: its order varies per process
    with atomic_dir(directory) as tmp:
        model.save_pretrained(tmp, save_embedding_layers=False)  # only the LoRA matrices are trained
        # peft's auto-generated model card holds library versions and boilerplate, not results.
        (tmp / "README.md").unlink(missing_ok=True)


def loss_summary(losses: Sequence[float], window: int = 5) -> dict:
    """Mean loss over the first and last ``window`` steps (single steps are noisy); the two
    windows never overlap, so a short run still shows its trend."""
    width = max(1, min(window, len(losses) // 2))
    head, tail = losses[:width], losses[-width:]
    return {"loss_start": round(sum(head) / width, 4), "loss_end": round(sum(tail) / width, 4), "loss_window_steps": width}
