"""The paper's setup on one accelerator, as one prepared run: `make gpu-check` (after `make setup
llama-tools` on the CUDA machine, which build llama-cpp-python and llama.cpp's tools with CUDA from
the pinned sdist). Nothing is downloaded.

1. A random-weight GGUF with Mistral-7B-Instruct's architecture (llama arch, 32 layers, d_model 4096,
   FFN 14336, 32 heads / 8 KV heads, vocab 32000, trained context 32768) and the chat template of
   mistral-7b-instruct-v0.2 GGUFs, written in F16 with the ``gguf`` package and quantised to Q4_K_M
   by ``llama-quantize``. Its vocabulary is a synthetic SentencePiece one (``spm_vocab``): <unk>,
   <s>, </s>, the 256 byte tokens, then SmolLM2's BPE pieces in merge order, re-spelled with "▁" for
   the leading space and scored by rank, so English costs about as many tokens as with Mistral's.
   Random weights decode exactly as fast as trained ones; they only change what is sampled (an
   early end-of-sequence is rare, and the share of completions that reach max_tokens is reported).
2. The pipeline's own generator (open_generator: chat prompter, SQLite cache, tqdm, batched backend)
   on B brainstorm requests at batch size B, for B in 1/8/16/32/64, against ``llama-batched-bench``
   doing the same work (B sequences of the same mean prompt length, the same new tokens, flash
   attention off and a KV stream per sequence as the pipeline's context, all layers offloaded):
   completion tokens per second of each, their ratio (goal >= 0.85 at every size), GPU memory.
3. The paper-scale hours: the generated tokens of benchmarks/bench_projection.py (measured per-stage
   token counts) over the best measured rate.

    python -m benchmarks.gpu_check            # the full run (sized for < 10 min on one H200); writes results/gpu.md
    python -m benchmarks.gpu_check --smoke    # CPU, 2 layers / d_model 256, batch 1 and 2: the CI check
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from benchmarks.bench_generation import Rate, benchmark_requests, best, pipeline
from benchmarks.bench_projection import paper_scale_tokens
from benchmarks.common import busy, header, table, write_result
from synthempathy.llm.chat import ChatPrompter
from synthempathy.llm.models import resolve_model_path
from synthempathy.params import Params, load_params

TOOLS_DIR = Path(".venv/llama.cpp/bin")  # where `make llama-tools` puts them (Makefile: LLAMA_TOOLS_DIR)
TEMPLATE = Path("tests/fixtures/chat_templates/mistral-7b-instruct-v0.2.jinja")  # what the README's GGUF carries
VOCAB_SIZE = 32000
SPECIAL = ("<unk>", "<s>", "</s>")


@dataclass(frozen=True)
class Shape:
    """A llama-architecture transformer: Mistral-7B's numbers by default."""

    n_layer: int = 32
    d_model: int = 4096
    ffn: int = 14336
    n_head: int = 32
    n_head_kv: int = 8
    context: int = 32768

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """Name and numpy shape (rows = output features) of every weight, in llama.cpp's names."""
        d, kv = self.d_model, self.d_model // self.n_head * self.n_head_kv
        out = [("token_embd.weight", (VOCAB_SIZE, d))]
        for i in range(self.n_layer):
            out += [
                (f"blk.{i}.attn_norm.weight", (d,)),
                (f"blk.{i}.attn_q.weight", (d, d)),
                (f"blk.{i}.attn_k.weight", (kv, d)),
                (f"blk.{i}.attn_v.weight", (kv, d)),
                (f"blk.{i}.attn_output.weight", (d, d)),
                (f"blk.{i}.ffn_norm.weight", (d,)),
                (f"blk.{i}.ffn_gate.weight", (self.ffn, d)),
                (f"blk.{i}.ffn_up.weight", (self.ffn, d)),
                (f"blk.{i}.ffn_down.weight", (d, self.ffn)),
            ]
        return out + [("output_norm.weight", (d,)), ("output.weight", (VOCAB_SIZE, d))]


@dataclass(frozen=True)
class Plan:
    shape: Shape
    batch_sizes: tuple[int, ...]
    new_tokens: int  # per request: max_tokens of the pipeline, -ntg of batched-bench
    n_ctx: int  # per sequence (model.n_ctx)
    rounds: int
    gpu: bool


FULL = Plan(Shape(), batch_sizes=(1, 8, 16, 32, 64), new_tokens=128, n_ctx=512, rounds=2, gpu=True)
SMOKE = Plan(Shape(n_layer=2, d_model=256, ffn=1024), batch_sizes=(1, 2), new_tokens=8, n_ctx=512, rounds=1, gpu=False)


def _bpe_bytes() -> dict[str, int]:
    """GPT-2 byte-level BPE: the character standing for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def embedded_bpe_pieces() -> list[str]:
    """The normal (not special) pieces of the embedded SmolLM2 GGUF's BPE vocabulary, in id order."""
    reader = gguf.GGUFReader(resolve_model_path("default"), "r")
    pieces = zip(reader.get_field(gguf.Keys.Tokenizer.LIST).contents(), reader.get_field(gguf.Keys.Tokenizer.TOKEN_TYPE).contents(), strict=True)
    return [piece for piece, kind in pieces if kind == gguf.TokenType.NORMAL]


def spm_vocab(bpe_tokens: Sequence[str]) -> tuple[list[str], list[float], list[int]]:
    """A 32,000-piece SentencePiece vocabulary (tokens, scores, token types) from the normal pieces
    of a byte-level BPE vocabulary in merge order: specials, the 256 byte-fallback tokens, then every
    piece that is whole UTF-8 text without control characters, "▁" for its spaces, scored by rank."""
    byte_of = _bpe_bytes()
    tokens = [*SPECIAL, *(f"<0x{b:02X}>" for b in range(256))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, *[gguf.TokenType.BYTE] * 256]
    seen = set(tokens)
    for piece in bpe_tokens:
        if len(tokens) == VOCAB_SIZE:
            break
        try:
            text = bytes(byte_of[ch] for ch in piece).decode("utf-8")
        except UnicodeDecodeError:
            continue  # part of a multi-byte character: byte fallback covers it
        if not text.isprintable() and text.strip(" "):
            continue
        text = text.replace(" ", "▁")
        if text not in seen:
            seen.add(text)
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
    if len(tokens) < VOCAB_SIZE:
        raise ValueError(f"only {len(tokens)} pieces from the BPE vocabulary, {VOCAB_SIZE} wanted")
    scores = [0.0] * (len(SPECIAL) + 256) + [-float(rank) for rank in range(VOCAB_SIZE - len(SPECIAL) - 256)]
    return tokens, scores, [int(t) for t in types]


def write_model(dest: Path, shape: Shape, tokens: list[str], scores: list[float], types: list[int], chat_template: str) -> None:
    """An F16 GGUF of ``shape`` with random weights (norms 1.0, F32), streamed tensor by tensor."""
    writer = gguf.GGUFWriter(dest, arch="llama")
    writer.add_name("random-weight Mistral-7B-shaped model (synthempathy gpu_check)")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.d_model)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.d_model // shape.n_head)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(VOCAB_SIZE)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(chat_template)
    # One pool of N(0, 0.02) values, read at a random offset per tensor: weights need no more
    # randomness than that to decode at full speed, and 7B fresh normals would take minutes.
    rng = np.random.default_rng(2025)
    pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(np.float16)
    specs = shape.tensors()
    for name, dims in specs:
        dtype = np.float32 if len(dims) == 1 else np.float16
        writer.add_tensor_info(name, dims, np.dtype(dtype), int(np.prod(dims)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, dims in specs:
        if len(dims) == 1:
            writer.write_tensor_data(np.ones(dims, dtype=np.float32))
        else:
            n = int(np.prod(dims))
            writer.write_tensor_data(np.resize(np.roll(pool, int(rng.integers(len(pool)))), n).reshape(dims))
    writer.close()


def tool(name: str) -> Path:
    path = TOOLS_DIR / name
    if not path.is_file():
        sys.exit(f"error: {path} not found; build llama.cpp's tools with make llama-tools")
    return path


def make_model(folder: Path, shape: Shape, threads: int) -> Path:
    """The random-weight GGUF, F16 then Q4_K_M (llama-quantize); returns the Q4_K_M file."""
    tokens, scores, types = spm_vocab(embedded_bpe_pieces())
    f16, q4 = folder / "mistral-shaped-f16.gguf", folder / "mistral-shaped-q4_k_m.gguf"
    write_model(f16, shape, tokens, scores, types, TEMPLATE.read_text(encoding="utf-8"))
    quantize = subprocess.run([str(tool("llama-quantize")), str(f16), str(q4), "Q4_K_M", str(threads)], capture_output=True, text=True)
    if quantize.returncode != 0:
        sys.exit(f"error: llama-quantize failed: {quantize.stderr.strip().splitlines()[-1:]}")
    f16.unlink()
    return q4


class GpuMemory:
    """Peak GPU memory in use (MiB, all GPUs, whatever holds it) while it runs, sampled by
    nvidia-smi every 0.2 s; None without nvidia-smi."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5
                ).stdout
                used = sum(int(line) for line in out.split())
                self.peak = max(self.peak or 0, used)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return
            self._stop.wait(0.2)

    def __enter__(self) -> GpuMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def batched_bench(model: Path, plan: Plan, batch: int, n_prompt: int, threads: int) -> Rate:
    """llama-batched-bench on ``batch`` sequences of ``n_prompt`` + ``plan.new_tokens`` tokens,
    set up like the pipeline's batched context; its completion tokens per second of total time."""
    n_ctx = plan.n_ctx * batch
    cmd = [
        str(tool("llama-batched-bench")), "-m", str(model), "-c", str(n_ctx), "-b", str(n_ctx), "-ub", "512",
        "-npp", str(n_prompt), "-ntg", str(plan.new_tokens), "-npl", str(batch), "-ngl", "99" if plan.gpu else "0",
        "-t", str(threads), "-fa", "off", "-no-kvu", "--output-format", "jsonl",
    ]  # fmt: skip
    for _ in range(3):  # llama.cpp's logger can lose its last lines at exit (its issue 22142): run again
        run = subprocess.run(cmd, capture_output=True, text=True)
        rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        if run.returncode != 0 or rows:
            break
    if run.returncode != 0 or not rows:
        sys.exit(f"error: llama-batched-bench failed (exit {run.returncode}): {run.stderr.strip().splitlines()[-3:]}")
    row = rows[-1]
    return Rate(plan.new_tokens * batch, row["t"], row["t"])


def measure(model: Path, plan: Plan, params: Params, threads: int) -> list[dict]:
    """For each batch size: the pipeline and batched-bench, alternating, best of plan.rounds."""
    results = []
    prompter = ChatPrompter(model, params.model)
    with tempfile.TemporaryDirectory() as tmp:
        for batch in plan.batch_sizes:
            requests = benchmark_requests(params, batch, plan.new_tokens)
            n_prompt = round(np.mean([prompter.prompt_tokens(r) for r in prompter.prepare(requests)]))
            runs: dict[str, list[Rate]] = {"pipeline": [], "bench": []}
            peaks: dict[str, list[int | None]] = {"pipeline": [], "bench": []}
            for round_ in range(plan.rounds):
                with GpuMemory() as memory:
                    runs["pipeline"].append(pipeline(params, batch, requests, Path(tmp) / f"b{batch}-{round_}"))
                    gc.collect()  # the generator's model and context, before the next program loads its own
                peaks["pipeline"].append(memory.peak)
                with GpuMemory() as memory:
                    runs["bench"].append(batched_bench(model, plan, batch, n_prompt, threads))
                peaks["bench"].append(memory.peak)
            pipe, bench = best(runs["pipeline"]), best(runs["bench"])
            mib = {name: None if None in values else max(values) for name, values in peaks.items()}
            results.append({"batch": batch, "prompt": n_prompt, "pipeline": pipe, "bench": bench, "gpu_mib": mib})
            print(
                f"batch {batch}: pipeline {pipe.per_s:.1f} tok/s, llama-batched-bench {bench.per_s:.1f} tok/s, "
                f"ratio {pipe.per_s / bench.per_s:.3f} (goal >= 0.85); ended at length {pipe.at_length:.0%}; "
                f"peak GPU memory (MiB) pipeline {mib['pipeline'] or 'n/a'}, bench {mib['bench'] or 'n/a'}",
                flush=True,
            )
    return results


def report(results: list[dict], plan: Plan, params: Params, facts: dict, seconds: float, busy_before: str) -> str:
    rows = [
        (
            str(r["batch"]), str(r["prompt"]), f"{r['pipeline'].per_s:.1f}", f"{r['bench'].per_s:.1f}",
            f"{r['pipeline'].per_s / r['bench'].per_s:.3f}", f"{r['pipeline'].at_length:.0%}", str(r["gpu_mib"]["pipeline"] or "n/a"), str(r["gpu_mib"]["bench"] or "n/a"),
        )
        for r in results
    ]  # fmt: skip
    token_rows, per_story, total = paper_scale_tokens()
    fastest = max(results, key=lambda r: r["pipeline"].per_s)
    hours = total / fastest["pipeline"].per_s / 3600
    head = "| batch | prompt tokens | pipeline tok/s | llama-batched-bench tok/s | pipeline / bench (goal >= 0.85) | reached max_tokens | peak GPU memory, pipeline (MiB) | peak GPU memory, bench (MiB) |"
    gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip() if plan.gpu else "none (CPU smoke run)"
    return (
        header("GPU check: Mistral-7B-shaped Q4_K_M on the pipeline vs llama-batched-bench", busy_before)
        + f"- GPU: {gpus}\n- model: {', '.join(f'{k} {v}' for k, v in facts.items())}\n"
        f"- pipeline: open_generator(...).generate on B brainstorm requests at generation.batch_size B, "
        f"model.n_ctx {plan.n_ctx}, n_gpu_layers {params.model.n_gpu_layers}, max_tokens {plan.new_tokens}; best of {plan.rounds} rounds, alternating\n"
        f"- whole run: {seconds / 60:.1f} min\n\n"
        "Completion tokens per second of wall clock, prompt processing included (model loading excluded), "
        "for the same work: B sequences of the mean prompt length, then the same new tokens each.\n\n"
        f"{table(head, rows)}\n\n"
        f"## Paper scale\n\nGenerated tokens (benchmarks/bench_projection.py): {per_story:.1f} per story, "
        f"T = {total / 1e6:.1f} M. At the best pipeline rate measured here ({fastest['pipeline'].per_s:.1f} tok/s, "
        f"batch {fastest['batch']}): **{hours:,.1f} hours** "
        + (
            "on this GPU (one worker; `generation.engine: ray` with one worker per GPU divides it by the GPUs).\n\n"
            if plan.gpu
            else "of this CPU on the smoke model: a plumbing check, not a projection.\n\n"
        )
        + "| generation | mean completion tokens | source |\n| --- | --- | --- |\n"
        + "\n".join(token_rows)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, a 2-layer model, batch 1 and 2; prints only")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 in smoke mode, 4 on a GPU)")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    threads = args.threads or (1 if args.smoke else 4)
    start, busy_before = time.perf_counter(), busy()
    if plan.gpu:
        import llama_cpp

        if not llama_cpp.llama_supports_gpu_offload():
            sys.exit("error: this llama-cpp-python build has no GPU support; on the CUDA machine: rm .venv/.llama-installed && make setup")
    with tempfile.TemporaryDirectory() as folder:
        model = make_model(Path(folder), plan.shape, threads)
        print(f"model: {model.name}, {model.stat().st_size / 2**30:.2f} GiB, made in {time.perf_counter() - start:.0f} s", flush=True)
        params = load_params()
        params = params.model_copy(
            update={
                "model": params.model.model_copy(update={"path": str(model), "n_ctx": plan.n_ctx, "n_threads": threads, "n_gpu_layers": -1 if plan.gpu else 0})
            }
        )
        facts = ChatPrompter(model, params.model).facts
        print(f"model: {', '.join(f'{k} {v}' for k, v in facts.items())}", flush=True)
        results = measure(model, plan, params, threads)
    seconds = time.perf_counter() - start
    text = report(results, plan, params, facts, seconds, busy_before)
    print(text.split("## Paper scale\n\n", 1)[1].split("\n\n")[0])
    print(f"gpu check: {seconds:.0f} s in all")
    if not args.smoke:
        write_result("gpu.md", text)


if __name__ == "__main__":
    main()
