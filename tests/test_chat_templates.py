"""The chat templates of the models people run (tests/fixtures/chat_templates/, sources in
SOURCES.md), each written into a copy of the embedded GGUF the way a user would (the gguf
package's gguf-new-metadata), then real brainstorm requests through the pipeline's own generator:
the rendered prompt holds the system text exactly once, inside that model's role markers, on the
single-stream, batched and Ray backends. Also the prompt budget, the GGUF facts and the one-line
errors for a model that cannot work."""

import dataclasses
import json
import sqlite3
import sys
from pathlib import Path

import gguf
import pytest
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata
from helpers import make_repo, run, stage_argv

from synthempathy.errors import InputError
from synthempathy.generation import build_requests, expand_scenarios
from synthempathy.llm.cache import LLMCache
from synthempathy.llm.chat import ChatPrompter, fold_system, offloaded_layers
from synthempathy.llm.llama import chat_arguments
from synthempathy.llm.llama_cpp_internals import completion_arguments, load_vocab
from synthempathy.llm.runtime import open_generator
from synthempathy.params import load_params
from synthempathy.prompts import load_prompt

FIXTURES = Path(__file__).parent / "fixtures/chat_templates"
SCENARIO = {"id": "sad-7", "text": "my landlord is raising the rent again", "category": "Financial", "severity": 6.0}

# Each template with the fragment its rendered prompt must hold: {system} and {user} are the
# brainstorm prompt's texts. "folds" says whether the pipeline must fold the system text into the
# user turn (the template raises on a system message, or drops it).
FAMILIES = {
    # v0.1/v0.2 templates are llama-cpp-python's MISTRAL/MIXTRAL constants: it recognises them and
    # uses its built-in mistral-instruct format, which drops system messages without a word.
    "mistral-7b-instruct-v0.1": ("[INST] {system}\n\n{user} [/INST]", True),
    "mistral-7b-instruct-v0.2": ("[INST] {system}\n\n{user} [/INST]", True),
    "mistral-7b-instruct-v0.3": ("[INST] {system}\n\n{user}[/INST]", False),
    "llama-2-7b-chat": ("[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]", False),
    "llama-3-8b-instruct": (
        "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>",
        False,
    ),
    "llama-3.1-8b-instruct": ("Today Date: 26 Jul 2024\n\n{system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>", False),
    "gemma-2-2b-it": ("<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n", True),
    "gemma-3-it": ("<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n", False),
    "qwen2.5-7b-instruct": ("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n", False),
    "phi-3-mini-4k-instruct": ("<|user|>\n{system}\n\n{user}<|end|>\n<|assistant|>\n", True),
}
# The issue's reproduction: v0.2's template from a file that ends in a newline, as editors write
# it; no longer llama-cpp-python's constant, so it is rendered by Jinja and raises on the system role.
MISTRAL_V02_FILE = ("mistral-7b-instruct-v0.2", "\n")


def template(name: str) -> str:
    return (FIXTURES / f"{name}.jinja").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def gguf_copy(tmp_path_factory, model_path):
    """``gguf_copy(key, chat_template=None, remove=())``: a copy of the embedded GGUF with that
    chat template (or its template removed), made once per session with gguf-new-metadata's own
    copy function (one reader for all copies: ~100 MB each)."""
    reader = gguf.GGUFReader(model_path, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    folder, made = tmp_path_factory.mktemp("gguf"), {}

    def make(key: str, chat_template: str | None = None, remove: tuple[str, ...] = ()) -> Path:
        if key not in made:
            dest = folder / f"{key}.gguf"
            new = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, chat_template)} if chat_template is not None else {}
            copy_with_new_metadata(reader, gguf.GGUFWriter(dest, arch=arch, endianess=reader.endianess), new, list(remove))
            made[key] = dest
        return made[key]

    return make


def family_model(gguf_copy, name: str, suffix: str = "") -> Path:
    return gguf_copy(name + ("-file" if suffix else ""), template(name) + suffix)


def params_for(path: Path, batch_size: int = 1, **model):
    params = load_params()
    return params.model_copy(
        update={
            "model": params.model.model_copy(update={"path": str(path), "n_threads": 1, "n_ctx": 512, **model}),
            "generation": params.generation.model_copy(update={"batch_size": batch_size, "engine": "local", "workers": 1}),
        }
    )


def brainstorm_requests(n: int = 1, max_tokens: int = 3):
    params = load_params()
    sampling = params.brainstorm.model_copy(update={"max_tokens": max_tokens})
    return build_requests(expand_scenarios([SCENARIO], n), load_prompt("brainstorm"), sampling, params.seed, "brainstorm")


def rendered(path: Path, request) -> tuple[str, int]:
    """The prompt a backend decodes for ``request`` (the same chat handler and tokenizer), as
    text with its special tokens, and its length in tokens."""
    llm = load_vocab(path, None)
    tokens = completion_arguments(llm, chat_arguments(request))["prompt"]
    return llm.detokenize(tokens, special=True).decode("utf-8"), len(tokens)


def check_rendering(path: Path, fragment: str, folds: bool, tmp_path: Path) -> None:
    original = brainstorm_requests(2)
    (_, system), *turns = original[0].messages  # the few-shot examples' user/assistant turns, then the record's
    users = [text for role, text in turns if role == "user"]
    assert len(turns) > 2 and turns[-1][0] == "user"
    prepared = ChatPrompter(path, params_for(path).model).prepare(original)
    assert (prepared != original) == folds
    text, n_tokens = rendered(path, prepared[0])
    assert text.count(system) == 1 and all(text.count(turn) == 1 for _, turn in turns)
    # beside the first user turn (a fold, most templates' own system slot) or the last (Mistral v0.3's)
    assert any(fragment.format(system=system, user=user) in text for user in (users[0], users[-1]))
    for batch_size in (1, 2):  # the single stream, and continuous batching, decode that prompt
        generator = open_generator(params_for(path, batch_size), LLMCache(tmp_path / f"b{batch_size}"))
        completions = generator.generate(original, desc="brainstorm")
        assert generator.stats.model["system_message"].startswith("folded" if folds else "sent")
        assert all(c.prompt_tokens == n_tokens and c.finish_reason in ("stop", "length") for c in completions)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_renders_the_system_text_once_in_its_role_markers(gguf_copy, tmp_path, name):
    fragment, folds = FAMILIES[name]
    check_rendering(family_model(gguf_copy, name), fragment, folds, tmp_path)


def test_mistral_v02_template_that_raises_on_system_is_folded(gguf_copy, tmp_path):
    name, suffix = MISTRAL_V02_FILE
    path = family_model(gguf_copy, name, suffix)
    assert load_vocab(path, None).chat_format == "chat_template.default"  # rendered by Jinja, not the built-in format
    check_rendering(path, FAMILIES[name][0], True, tmp_path)


def test_on_ray_the_folded_prompt_is_what_the_workers_decode(gguf_copy, tmp_path):
    pytest.importorskip("ray")
    name, suffix = MISTRAL_V02_FILE
    path = family_model(gguf_copy, name, suffix)
    local = params_for(path, batch_size=2)
    on_ray = local.model_copy(update={"generation": local.generation.model_copy(update={"engine": "ray", "workers": 1})})
    requests = brainstorm_requests(2)
    reference = open_generator(local, LLMCache(tmp_path / "local")).generate(requests, desc="brainstorm")
    generator = open_generator(on_ray, LLMCache(tmp_path / "ray"))
    try:
        assert generator.generate(requests, desc="brainstorm") == reference
    finally:
        generator.close()
    assert generator.stats.engine == "ray" and generator.stats.generated == 2


def test_fold_rule():
    assert fold_system((("system", "S"), ("user", "U"))) == (("user", "S\n\nU"),)
    assert fold_system((("user", "U"),)) == (("user", "U"),)
    assert fold_system((("system", "S"), ("assistant", "A"), ("user", "U"))) == (("assistant", "A"), ("user", "S\n\nU"))


def test_default_model_sends_requests_unchanged_so_cache_keys_stay(model_path):
    requests = brainstorm_requests(3)
    prompter = ChatPrompter(model_path, load_params().model)
    assert prompter.prepare(requests) == requests and not prompter.folds_system


def test_facts_describe_the_gguf(model_path):
    facts = ChatPrompter(model_path, load_params().model).facts
    assert facts["architecture"] == "llama" and facts["quantization"] == "Q4_1" and facts["trained_context"] == 8192
    assert 130e6 < facts["parameters"] < 140e6 and facts["chat_template"] == "gguf" and facts["layers_offloaded"] == "0/31"


@pytest.mark.parametrize(
    "n_gpu_layers, gpu_build, expected, warns",
    [(0, True, 0, False), (-1, True, 33, False), (10, True, 10, False), (99, True, 33, True), (-1, False, 0, True), (0, False, 0, False)],
)
def test_offloaded_layers_clamps_and_warns(n_gpu_layers, gpu_build, expected, warns):
    offloaded, total, warning = offloaded_layers(n_gpu_layers, 32, gpu_build)
    assert (offloaded, total, warning is not None) == (expected, 33, warns)


# --- prompt budget ---------------------------------------------------------------------------


def test_prompt_budget_fits_exactly_and_fails_one_token_over(model_path):
    model = load_params().model.model_copy(update={"n_ctx": 512})
    prompter = ChatPrompter(model_path, model)
    request = brainstorm_requests(1)[0]
    _, n_prompt = rendered(model_path, request)
    prompter.check_budget([dataclasses.replace(request, max_tokens=512 - n_prompt)], "brainstorm")
    with pytest.raises(InputError) as error:
        prompter.check_budget([dataclasses.replace(request, max_tokens=513 - n_prompt)], "brainstorm")
    assert str(error.value) == (
        f"record sad-7-s0: prompt {n_prompt} tokens + brainstorm.max_tokens {513 - n_prompt} = 513 > model.n_ctx 512; "
        "raise model.n_ctx (at most 8192, the context SmolLM2-135M-Instruct.Q4_1.gguf was trained on) or lower brainstorm.max_tokens"
    )


def test_an_oversized_request_stops_the_stage_before_anything_is_decoded(tmp_path, model_path):
    params = params_for(model_path, batch_size=2)
    requests = brainstorm_requests(3, max_tokens=490)  # ~95 prompt tokens + 490 > 512
    generator = open_generator(params, LLMCache(tmp_path))
    with pytest.raises(InputError, match=r"record sad-7-s0: prompt \d+ tokens \+ brainstorm.max_tokens 490 = \d+ > model.n_ctx 512"):
        generator.generate(requests, desc="brainstorm")
    assert generator.stats.completion_tokens == 0
    assert sqlite3.connect(tmp_path / "completions.sqlite3").execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 0


def test_n_ctx_above_the_trained_context_is_an_error(model_path):
    model = load_params().model.model_copy(update={"n_ctx": 16384})
    with pytest.raises(InputError, match="model.n_ctx=16384 exceeds the 8192 tokens SmolLM2-135M-Instruct.Q4_1.gguf was trained on; set model.n_ctx <= 8192"):
        ChatPrompter(model_path, model)


# --- the stage, as a user runs it ------------------------------------------------------------


def stage_repo(tmp_path: Path, model: Path, **params) -> Path:
    repo = make_repo(tmp_path, {"model": {"n_threads": 1, "n_ctx": 512}, "brainstorm": {"n_stories": 1, "max_tokens": 8}})
    (repo / "models" / model.name).symlink_to(model)
    (repo / "data/scenarios.jsonl").write_text(json.dumps(SCENARIO) + "\n")
    text = (repo / "params.yaml").read_text().replace("path: default", f"path: models/{model.name}")
    for old, new in params.items():
        text = text.replace(old, new)
    (repo / "params.yaml").write_text(text)
    return repo


def test_brainstorm_stage_writes_stories_with_the_mistral_v02_template(gguf_copy, tmp_path):
    # checks off: 8-token stories would be drawn again; one draw per record is what is counted here
    repo = stage_repo(tmp_path, family_model(gguf_copy, *MISTRAL_V02_FILE), **{"checks: true": "checks: false"})
    result = run([sys.executable, "-m", "stages.brainstorm", *stage_argv("brainstorm")], repo)
    assert result.returncode == 0, result.stderr[-2000:]
    # Every record comes back, as a story or a named rejection: SmolLM2's weights under Mistral's
    # [INST] format mostly end the turn at once (empty_generation), Mistral's own would not.
    stories = [json.loads(line) for line in (repo / "data/stories.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (repo / "data/rejected/brainstorm.jsonl").read_text().splitlines()]
    assert [r["id"] for r in stories + rejected] == ["sad-7-s0"] and {r["reason"] for r in rejected} <= {"empty_generation"}
    log = json.loads((repo / "logs/brainstorm.json").read_text())
    assert log["model"]["system_message"] == "folded into the first user turn" and log["model"]["chat_template"] == "gguf"
    assert "model: file mistral-7b-instruct-v0.2-file.gguf, architecture llama" in result.stderr


@pytest.mark.parametrize(
    "case, fragment",
    [
        (
            "unknown_format",
            "model.chat_format=mistral-v9: llama-cpp-python 0.3.36 has no such format (model default-template.gguf); set model.chat_format to one of",
        ),
        ("no_template", "the GGUF carries no chat template (tokenizer.chat_template) and model.chat_format is null; set model.chat_format"),
        ("unrenderable", "its chat template cannot render a user message, even with the system text folded into it; set model.chat_format"),
        ("over_budget", "record sad-7-s0: prompt"),
    ],
)
def test_a_model_that_cannot_work_is_one_line_and_writes_nothing(gguf_copy, tmp_path, case, fragment):
    models = {
        "unknown_format": lambda: gguf_copy("default-template"),
        "no_template": lambda: gguf_copy("no-template", remove=(gguf.Keys.Tokenizer.CHAT_TEMPLATE,)),
        "unrenderable": lambda: gguf_copy("unrenderable", "{{ raise_exception('this template renders nothing') }}"),
        "over_budget": lambda: gguf_copy("default-template"),
    }
    edits = {"unknown_format": {"chat_format: null": "chat_format: mistral-v9"}, "over_budget": {"max_tokens: 8": "max_tokens: 500"}}
    repo = stage_repo(tmp_path, models[case](), **edits.get(case, {}))
    result = run([sys.executable, "-m", "stages.brainstorm", *stage_argv("brainstorm")], repo)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in result.stderr
    assert not (repo / "data/stories.jsonl").exists() and not (repo / "data/rejected/brainstorm.jsonl").exists()
