"""benchmarks/gpu_check.py: the model it builds has Mistral-7B's shape, and its CPU smoke mode (a
2-layer model, batch 1 and 2) runs end to end the way `make gpu-check` runs on a GPU: a
random-weight GGUF written with the gguf package, quantised by llama-quantize, decoded by the
pipeline and by llama-batched-bench (both from `make llama-tools`). Timings are printed, not asserted."""

import math
import subprocess
import sys

from helpers import ROOT

from benchmarks.gpu_check import VOCAB_SIZE, Shape, embedded_bpe_pieces, spm_vocab


def test_full_shape_is_mistral_7b():
    assert sum(math.prod(dims) for _, dims in Shape().tensors()) == 7_241_732_096


def test_spm_vocab_from_smollm2_pieces():
    tokens, scores, types = spm_vocab(embedded_bpe_pieces())
    assert len(tokens) == len(set(tokens)) == len(scores) == len(types) == VOCAB_SIZE
    assert tokens[:4] == ["<unk>", "<s>", "</s>", "<0x00>"] and tokens[258] == "<0xFF>"
    assert "▁the" in tokens and not any(" " in t or t.startswith("<|") for t in tokens)
    assert scores[259:262] == [0.0, -1.0, -2.0]


def test_smoke_mode_runs_end_to_end():
    run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    out = run.stdout
    assert "architecture llama" in out and "quantization Q4_K_M" in out and "trained_context 32768" in out
    assert "system_message folded into the first user turn" in out  # Mistral v0.2's template
    for batch in (1, 2):
        assert f"batch {batch}: pipeline " in out and "llama-batched-bench" in out and "(goal >= 0.85)" in out
    assert "Generated tokens (benchmarks/bench_projection.py)" in out and " hours** of this CPU on the smoke model" in out
    assert "wrote " not in out
