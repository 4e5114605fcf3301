"""Stage: base vs base+LoRA responses to held-out situations, scored with the EPITOME scorer:
metrics per mechanism (means, spread, paired-bootstrap CI), their plot's data, and the
generations side by side (both responses and their scores)."""

import logging
import time

from peft import PeftModel

from synthempathy.empathy.scorer import score
from synthempathy.errors import stage_main
from synthempathy.evaluate import MECHANISMS, compare_scores, generate_responses, read_situations, reply_stats, side_by_side, summary_line
from synthempathy.finetune import load_base, select_device
from synthempathy.io import write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params
from synthempathy.paths import log_path
from synthempathy.plots import base_vs_tuned_rows, write_plot

log = logging.getLogger("evaluate")


@stage_main("adapter", "scorer", "generations", "metrics", "plot")
def main(paths) -> None:
    all_params = load_params()
    params, finetune = all_params.evaluate, all_params.finetune
    situations = read_situations(params.situations, params.text_column, params.limit)
    texts = [s["text"] for s in situations]
    started = time.perf_counter()
    base, tokenizer = load_base(finetune.base_model, select_device(finetune.device, finetune.threads))
    model = PeftModel.from_pretrained(base, paths.adapter)
    tuned_replies = generate_responses(model, tokenizer, texts, params, all_params.seed, "tuned")
    with model.disable_adapter():
        base_replies = generate_responses(model, tokenizer, texts, params, all_params.seed, "base")
    generated = time.perf_counter()
    # One scorer call for both sets: the scorer loads once.
    scores = score([*zip(texts, base_replies, strict=True), *zip(texts, tuned_replies, strict=True)], scorer_dir=paths.scorer)
    base_scores, tuned_scores = scores[: len(texts)], scores[len(texts) :]
    write_jsonl_atomic(paths.generations, side_by_side(situations, base_replies, tuned_replies, base_scores, tuned_scores))
    metrics = compare_scores(base_scores, tuned_scores, params.bootstrap_samples, all_params.seed)
    metrics["replies"] = {"base": reply_stats(base_replies), "tuned": reply_stats(tuned_replies)}
    write_json_atomic(paths.metrics, metrics)
    write_plot(paths.plot, base_vs_tuned_rows(metrics, MECHANISMS), ("mechanism", "base", "tuned", "difference", "ci_low", "ci_high"))
    write_json_atomic(
        log_path("evaluate"), {"situations": len(texts), "generate_s": round(generated - started, 1), "score_s": round(time.perf_counter() - generated, 1)}
    )
    log.info("%s", summary_line(metrics))


if __name__ == "__main__":
    main()
