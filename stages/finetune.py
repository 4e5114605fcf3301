"""Stage: LoRA SFT of finetune.base_model on the SFT records -> a LoRA adapter.

Its metrics hold only reproducible numbers (losses, counts); wall times go to the untracked
run log.
"""

import logging
import time
from pathlib import Path

from synthempathy.errors import stage_main
from synthempathy.finetune import encode_example, load_base, loss_summary, save_adapter, select_device, train_lora
from synthempathy.io import read_jsonl, write_json_atomic
from synthempathy.params import load_params
from synthempathy.paths import log_path

log = logging.getLogger("finetune")


@stage_main("sft", "adapter", "metrics")
def main(paths) -> None:
    params = load_params().finetune
    records = read_jsonl(paths.sft, required=("id", "messages"))
    device = select_device(params.device, params.threads)
    started = time.perf_counter()
    model, tokenizer = load_base(params.base_model, device)
    loaded = time.perf_counter()
    encoded = [encode_example(tokenizer, r["messages"], params.max_length) for r in records]
    examples = [e for e in encoded if e is not None]
    model, losses = train_lora(model, examples, params, tokenizer.pad_token_id)
    trained = time.perf_counter()
    save_adapter(model, Path(paths.adapter), params.base_model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    write_json_atomic(
        paths.metrics,
        {
            "examples": len(examples),
            "examples_skipped_too_long": len(encoded) - len(examples),
            "response_tokens": sum(sum(label >= 0 for label in e.labels) for e in examples),
            "steps": len(losses),
            "trainable_params": trainable,
            **loss_summary(losses),
        },
    )
    write_json_atomic(
        log_path("finetune"),
        {
            "device": str(device),
            "load_s": round(loaded - started, 1),
            "train_s": round(trained - loaded, 1),
            "s_per_step": round((trained - loaded) / len(losses), 2),
        },
    )
    log.info("trained %d steps on %d examples (%d skipped): loss %.3f -> %.3f", len(losses), len(examples), len(encoded) - len(examples), losses[0], losses[-1])


if __name__ == "__main__":
    main()
