"""Response-only loss mask on the real SmolLM2 tokenizer, batching, and a tiny real LoRA run."""

import copy
import json

import pytest

from synthempathy.export import chat_messages
from synthempathy.finetune import (
    IGNORE_INDEX,
    batch_schedule,
    collate,
    encode_example,
    load_base,
    planned_steps,
    prompt_text,
    save_adapter,
    select_device,
    train_lora,
)
from synthempathy.params import FinetuneParams

SITUATION = "My landlord is raising the rent again and I don't know how I'll keep up with bills this month."
REPLY = "That sounds really stressful, and it's understandable to feel worried. Have you been able to talk to your landlord about it?"
PARAMS = FinetuneParams(
    base_model="default",
    lora_r=4,
    lora_alpha=8,
    lora_dropout=0.1,
    target_modules=("v_proj", "q_proj"),
    learning_rate=1e-3,
    epochs=1,
    max_steps=3,
    batch_size=2,
    max_length=64,
    seed=7,
    device="cpu",
    threads=1,
)


@pytest.fixture(scope="module")
def base():
    return load_base("default", select_device("cpu", PARAMS.threads))


def test_labels_mask_exactly_the_prompt(base):
    _, tokenizer = base
    messages = chat_messages(SITUATION, REPLY)
    example = encode_example(tokenizer, messages, max_length=512)
    prompt_ids = tokenizer(prompt_text(tokenizer, messages[:1]), add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert list(example.input_ids[:n]) == prompt_ids  # the prompt exactly as generation tokenises it
    assert example.labels[:n] == (IGNORE_INDEX,) * n
    assert example.labels[n:] == example.input_ids[n:]
    # The response tokens are the reply and the end-of-turn marker that teaches the model to stop.
    assert tokenizer.decode(example.input_ids[n:]).strip() == REPLY + "<|im_end|>"


def test_truncation_cuts_the_response_tail_and_skips_prompts_that_fill_the_window(base):
    _, tokenizer = base
    messages = chat_messages(SITUATION, REPLY)
    full = encode_example(tokenizer, messages, max_length=512)
    n_prompt = full.labels.count(IGNORE_INDEX)
    cut = encode_example(tokenizer, messages, max_length=n_prompt + 20)
    assert cut.input_ids == full.input_ids[: n_prompt + 20] and cut.labels == full.labels[: n_prompt + 20]
    assert encode_example(tokenizer, messages, max_length=n_prompt + 5) is None


def test_collate_masks_padding(base):
    _, tokenizer = base
    long = encode_example(tokenizer, chat_messages(SITUATION, REPLY), max_length=512)
    short = encode_example(tokenizer, chat_messages("I failed a test.", "I'm sorry, that hurts."), max_length=512)
    batch = collate([long, short], tokenizer.pad_token_id)
    gap = len(long.input_ids) - len(short.input_ids)
    assert batch["input_ids"].shape == (2, len(long.input_ids))
    assert batch["labels"][1, -gap:].eq(IGNORE_INDEX).all() and batch["attention_mask"][1, -gap:].eq(0).all()
    assert batch["labels"][1, : len(short.labels)].tolist() == list(short.labels)
    assert batch["attention_mask"][0].eq(1).all()


def test_batch_schedule_is_seeded_epoch_shuffles():
    schedule = batch_schedule(5, 2, steps=6, seed=1)
    assert schedule == batch_schedule(5, 2, steps=6, seed=1) != batch_schedule(5, 2, steps=6, seed=2)
    assert sorted(i for b in schedule[:3] for i in b) == [0, 1, 2, 3, 4]  # each example once per epoch
    assert planned_steps(5, 2, epochs=2, max_steps=None) == 6 and planned_steps(5, 2, epochs=2, max_steps=11) == 11


def test_tiny_lora_run_learns_and_is_byte_identical_on_rerun(base, tmp_path):
    model, tokenizer = base
    pairs = [("My landlord raised the rent.", REPLY), ("I failed my driving test again.", "I'm sorry, that is discouraging. How are you feeling?")] * 2
    examples = [encode_example(tokenizer, chat_messages(s, r), PARAMS.max_length) for s, r in pairs]
    assert all(e is not None and len(e.input_ids) <= 64 for e in examples)
    runs = []
    for run in ("a", "b"):
        tuned, losses = train_lora(copy.deepcopy(model), examples, PARAMS, tokenizer.pad_token_id)
        save_adapter(tuned, tmp_path / run, "default")
        runs.append((tuned, losses))
    (tuned, losses), (_, losses_again) = runs
    assert len(losses) == PARAMS.max_steps and losses == losses_again
    lora_b = [p for name, p in tuned.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero: training moved it
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    # No machine path, and no set order (it varies with each process's hash seed).
    assert config["base_model_name_or_path"] == "default" and config["target_modules"] == ["q_proj", "v_proj"]
