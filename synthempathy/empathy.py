"""EPITOME empathy scorer (Sharma, Miner, Atkins, Althoff, EMNLP 2020).

For a (seeker post, response) pair, each communication mechanism is rated 0 (none), 1 (weak)
or 2 (strong): ER emotional reactions, IP interpretations, EX explorations. One classifier per
mechanism averages two logistic regressions: one on a TF-IDF of the response, one on the
response's all-MiniLM-L6-v2 embedding, cheap lexical cues and the post-response cosine. A
pair's empathy score is the mean over mechanisms of the expected level (sum of
level * probability), the measure SYNTHEMPATHY reports.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import pickle
import re
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from synthempathy.embeddings import Embedder
from synthempathy.errors import InputError
from synthempathy.io import atomic_dir, write_json_atomic
from synthempathy.seeding import derive_seed
from synthempathy.text import words

log = logging.getLogger(__name__)

MECHANISMS = ("er", "ip", "ex")
REQUIRED_COLUMNS = ("sp_id", "rp_id", "seeker_post", "response_post", "level")
LEVELS = (0, 1, 2)
MODEL_FILE = "models.pkl"
MANIFEST_FILE = "manifest.json"


# ---------------------------------------------------------------- data


def normalise_text(text: str) -> str:
    """Collapse whitespace: the three EPITOME files differ only in spacing of the same posts."""
    return " ".join(text.split())


def load_epitome_file(path: str | Path) -> pd.DataFrame:
    """One EPITOME CSV as rows (line, sp_id, rp_id, seeker, response, level).

    A structural problem (missing file or column, a level outside 0-2) is an InputError naming
    the file and line; a row with an empty post or response carries no label signal and is
    skipped with a logged count.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; copy it from behavioral-data/Empathy-Mental-Health dataset/ (see data/external/epitome/README.md)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); re-export the file as UTF-8") from None
    if not text.strip():
        raise InputError(f"{path}: file is empty; copy it from behavioral-data/Empathy-Mental-Health dataset/")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; use the original EPITOME CSV with its header row")
    rows, skipped, line = [], [], reader.line_num + 1
    for row in reader:  # line numbers by hand: quoted fields may span several lines
        start, line = line, reader.line_num + 1
        level = (row["level"] or "").strip()
        if level not in ("0", "1", "2"):
            raise InputError(f"{path}:{start}: level {row['level']!r} is not 0, 1 or 2; fix or drop the row")
        seeker, response = normalise_text(row["seeker_post"] or ""), normalise_text(row["response_post"] or "")
        if not seeker or not response or not (row["sp_id"] or "").strip():
            skipped.append(start)
            continue
        rows.append({"line": start, "sp_id": row["sp_id"].strip(), "rp_id": (row["rp_id"] or "").strip(), "seeker": seeker, "response": response, "level": int(level)})
    if skipped:
        log.warning("%s: skipped %d row(s) with an empty sp_id, seeker post or response (lines %s)", path, len(skipped), ", ".join(map(str, skipped[:10])))
    if not rows:
        raise InputError(f"{path}: no usable data rows; copy the original file from behavioral-data/Empathy-Mental-Health dataset/")
    return pd.DataFrame(rows)


def load_epitome(files: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """The three EPITOME annotation files, given and keyed by mechanism (er, ip, ex)."""
    return {m: load_epitome_file(files[m]) for m in MECHANISMS}


def pick_posts(sp_ids: Iterable[str], n: int, seed: int, purpose: str) -> list[str]:
    """n distinct seeker posts ranked by a hash of (seed, purpose, sp_id): raising n keeps the
    earlier picks, and each purpose draws independently of the others."""
    ranked = sorted(set(sp_ids), key=lambda sp: (derive_seed(seed, purpose, sp), sp))
    return sorted(ranked[:n])


def sample_posts(data: Mapping[str, pd.DataFrame], n: Optional[int], seed: int) -> dict[str, pd.DataFrame]:
    """Only n seeker posts (all their rows in every file), for quick runs; None keeps all."""
    if n is None:
        return dict(data)
    keep = set(pick_posts((sp for frame in data.values() for sp in frame["sp_id"]), n, seed, "train_scorer/sample"))
    return {m: frame[frame["sp_id"].isin(keep)].reset_index(drop=True) for m, frame in data.items()}


def split_heldout(data: Mapping[str, pd.DataFrame], n: int, seed: int) -> tuple[list[str], list[dict]]:
    """The held-out sp_ids, and their posts as situation records ``{id: epitome-<sp_id>, text}``."""
    rows = pd.concat(list(data.values())).drop_duplicates("sp_id").set_index("sp_id")["seeker"]
    sp_ids = pick_posts(rows.index, n, seed, "train_scorer")
    return sp_ids, [{"id": f"epitome-{sp}", "text": rows[sp]} for sp in sp_ids]


# ---------------------------------------------------------------- features

_SECOND_PERSON = frozenset("you your yours yourself you're youre you've youve you'll you'd u ur".split())
_FIRST_PERSON = frozenset("i me my mine myself i'm im i've ive i'd i'll".split())
# Emotion and sympathy words typical of emotional reactions (EPITOME's ER rationales).
_EMOTION = frozenset(
    """sorry sad sadness heartbreaking heartbroken hurt hurts hurting pain painful awful terrible horrible
    tough hard difficult rough scary scared afraid fear worried worry upset angry frustrating frustrated
    lonely alone hug hugs love care feel feeling feelings glad happy proud hope hoping wish
    understand understandable sucks unfair overwhelming overwhelmed""".split()
)
# Phrases that signal understanding or a shared experience (interpretations).
_UNDERSTANDING = re.compile(r"\b(i understand|i know (?:how|what)|i get (?:it|that)|been there|same (?:thing|here|boat)|i (?:felt|feel|went|was|had|used to)|relate)\b")
_WH = re.compile(r"\b(what|how|why|when|where|who|do you|did you|have you|are you|is it|would you|can you)\b")

LEXICAL_CUES = ("questions", "wh_words", "second_person", "first_person", "emotion_words", "understanding", "log_words")


def lexical_cues(response: str) -> list[float]:
    """Cheap surface cues of the response, in the order of ``LEXICAL_CUES``."""
    lower = response.lower().replace("’", "'")
    tokens = words(lower)
    n = max(len(tokens), 1)
    return [
        math.log1p(response.count("?")),
        math.log1p(len(_WH.findall(lower))),
        sum(w in _SECOND_PERSON for w in tokens) / n,
        sum(w in _FIRST_PERSON for w in tokens) / n,
        math.log1p(sum(w in _EMOTION for w in tokens)),
        math.log1p(len(_UNDERSTANDING.findall(lower))),
        math.log1p(len(tokens)),
    ]


def pair_features(seeker_vecs: np.ndarray, response_vecs: np.ndarray, responses: Sequence[str]) -> pd.DataFrame:
    """Model input: the response text plus dense columns [v, lexical cues, cos(u, v)].

    v is the response embedding, u the seeker post's. The full interaction vector
    [u, v, u*v, |u-v|] scored lower in grouped CV (ER macro-F1 0.55 vs 0.63 for v + cues): the
    level is a property of the response, and 1,536 extra dims overfit 2.8k pairs. The cosine keeps
    the one pair signal that generalises, whether the response addresses the post at all.
    """
    cues = np.array([lexical_cues(r) for r in responses], dtype=np.float32).reshape(len(responses), len(LEXICAL_CUES))
    cosine = np.sum(seeker_vecs * response_vecs, axis=1, keepdims=True)  # both unit norm
    dense = np.hstack([response_vecs, cues, cosine])
    frame = pd.DataFrame(dense, columns=[f"f{i}" for i in range(dense.shape[1])])
    frame.insert(0, "response", list(responses))
    return frame


def frame_features(frame: pd.DataFrame, embedder: Embedder) -> pd.DataFrame:
    """``pair_features`` of an EPITOME frame's (seeker, response) rows."""
    return pair_features(embedder.encode(list(frame["seeker"])), embedder.encode(list(frame["response"])), list(frame["response"]))


# ---------------------------------------------------------------- model

# Keep "I" and "?" as tokens: first person and questions mark interpretations and explorations.
TOKEN_PATTERN = r"(?u)\b\w+\b|[?!]"


def text_model(C: float) -> Pipeline:
    """TF-IDF of the response (words and bigrams) + logistic regression; also the TF-IDF baseline."""
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=TOKEN_PATTERN)
    return Pipeline([("tfidf", ColumnTransformer([("response", tfidf, "response")])), ("lr", LogisticRegression(C=C, max_iter=5000))])


def embedding_model(C: float) -> Pipeline:
    """Standardised dense columns (embedding, cues, cosine) + logistic regression."""
    dense = ColumnTransformer([("dense", StandardScaler(), make_column_selector(dtype_include=np.number))])
    return Pipeline([("dense", dense), ("lr", LogisticRegression(C=C, max_iter=5000))])


def build_model(text_C: float, embedding_C: float) -> VotingClassifier:
    """Soft vote (mean probability) of the text and embedding models: each beats the other on
    some mechanism in CV, and their average beats both on accuracy and log-loss."""
    return VotingClassifier([("text", text_model(text_C)), ("embedding", embedding_model(embedding_C))], voting="soft")


def fit_systems(X: pd.DataFrame, y: np.ndarray, text_C: float, embedding_C: float) -> dict[str, object]:
    """The scorer and the two baselines, fitted on (X, y).

    The TF-IDF baseline is the scorer's own fitted text model: the same settings fitted on the
    same rows, so it need not be fitted twice, and model vs tfidf_lr isolates what embeddings add.
    """
    model = build_model(text_C, embedding_C).fit(X, y)
    return {"model": model, "majority": DummyClassifier(strategy="most_frequent").fit(X, y), "tfidf_lr": model.named_estimators_["text"]}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def cross_validate(X: pd.DataFrame, y: np.ndarray, groups: Sequence[str], folds: int, seed: int, text_C: float, embedding_C: float) -> dict[str, dict[str, float]]:
    """Per system, mean and std over folds of accuracy and macro-F1.

    Folds are stratified by level and grouped by seeker post, so no post (and none of its
    responses) is in both train and test.
    """
    y = np.asarray(y)
    per_fold: dict[str, list[dict[str, float]]] = {}
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(X, y, groups), start=1):
        systems = fit_systems(X.iloc[train], y[train], text_C, embedding_C)
        for name, estimator in systems.items():
            per_fold.setdefault(name, []).append(classification_metrics(y[test], estimator.predict(X.iloc[test])))
        log.info("fold %d/%d: model macro-F1 %.3f", k, folds, per_fold["model"][-1]["macro_f1"])
    return {name: _mean_std(scores) for name, scores in per_fold.items()}


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in scores.items()}


def _mean_std(scores: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for metric in scores[0]:
        values = np.array([s[metric] for s in scores])
        out[metric], out[f"{metric}_std"] = round(float(values.mean()), 4), round(float(values.std()), 4)
    return out


def train_scorer(
    data: Mapping[str, pd.DataFrame], heldout: Iterable[str], embedder: Embedder, folds: int, seed: int, text_C: float, embedding_C: float
) -> tuple[dict[str, VotingClassifier], dict]:
    """Cross-validate, then fit one scorer per mechanism on every non-held-out pair.

    Returns the fitted models and metrics: CV per mechanism and system, and the final models
    and baselines on the held-out posts' pairs (never seen in CV or fitting).
    """
    heldout = set(heldout)
    models, metrics = {}, {"cv_folds": folds, "heldout_posts": len(heldout), "cv": {}, "heldout": {}, "train_pairs": {}, "heldout_pairs": {}}
    for mechanism, frame in data.items():
        is_heldout = frame["sp_id"].isin(heldout).to_numpy()
        if frame["sp_id"][~is_heldout].nunique() < folds:
            raise InputError(f"train_scorer.heldout_posts={len(heldout)} leaves fewer than cv_folds={folds} seeker posts to train on; lower it")
        X, y = frame_features(frame, embedder), frame["level"].to_numpy()
        X_train, y_train, X_test, y_test = X[~is_heldout].reset_index(drop=True), y[~is_heldout], X[is_heldout].reset_index(drop=True), y[is_heldout]
        log.info("%s: %d training pairs, %d held-out pairs; %d-fold CV", mechanism, len(y_train), len(y_test), folds)
        metrics["cv"][mechanism] = cross_validate(X_train, y_train, frame["sp_id"][~is_heldout].tolist(), folds, seed, text_C, embedding_C)
        systems = fit_systems(X_train, y_train, text_C, embedding_C)
        if len(y_test):
            metrics["heldout"][mechanism] = {name: _rounded(classification_metrics(y_test, est.predict(X_test))) for name, est in systems.items()}
        metrics["train_pairs"][mechanism], metrics["heldout_pairs"][mechanism] = int(len(y_train)), int(len(y_test))
        models[mechanism] = systems["model"]
    return models, metrics


# ---------------------------------------------------------------- scoring


class EmpathyScorer:
    """Fitted per-mechanism models plus the embedder their features need."""

    def __init__(self, models: Mapping[str, VotingClassifier], embedder: Embedder) -> None:
        self.models = dict(models)
        self.embedder = embedder

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[dict]:
        """Per (seeker post, response): ``<m>_level`` (argmax) and ``<m>`` (expected level,
        sum of level * probability) for m in er, ip, ex, and ``empathy``, their mean (0-2).

        An empty response communicates nothing, so it scores level 0 everywhere (EPITOME's
        "no communication"); an empty seeker post is the caller's error.
        """
        seekers, responses = [normalise_text(s) for s, _ in pairs], [normalise_text(r) for _, r in pairs]
        if not all(seekers):
            raise InputError(f"pair {seekers.index('')}: empty seeker post; drop the pair before scoring")
        results = [{**{f"{m}_level": 0 for m in MECHANISMS}, **{m: 0.0 for m in MECHANISMS}} for _ in pairs]
        rows = [i for i, r in enumerate(responses) if r]
        if len(rows) < len(pairs):
            log.warning("scored %d empty response(s) as level 0", len(pairs) - len(rows))
        if rows:
            kept = [responses[i] for i in rows]
            X = pair_features(self.embedder.encode([seekers[i] for i in rows]), self.embedder.encode(kept), kept)
            for mechanism in MECHANISMS:
                model = self.models[mechanism]
                probs, levels = model.predict_proba(X), np.asarray(model.classes_)
                for i, p in zip(rows, probs):
                    results[i][f"{mechanism}_level"] = int(levels[p.argmax()])
                    results[i][mechanism] = float(p @ levels)
        for result in results:
            result["empathy"] = float(np.mean([result[m] for m in MECHANISMS]))
        return results


def scorer_manifest(models: Mapping[str, VotingClassifier], embedding_model: str, batch_size: int, text_C: float, embedding_C: float) -> dict:
    """What a reader of models/empathy_scorer needs to know without unpickling it."""
    return {
        "framework": "EPITOME (Sharma et al., EMNLP 2020)",
        "mechanisms": {m: {"classes": [int(c) for c in models[m].classes_]} for m in models},
        "model": f"soft vote of LR(C={text_C}) on TF-IDF(response) and LR(C={embedding_C}) on standardised dense features",
        "features": {
            "text": f"response, TF-IDF word 1-2-grams, min_df=2, sublinear tf, token_pattern={TOKEN_PATTERN!r}",
            "dense": ["response embedding (unit norm)", *LEXICAL_CUES, "cosine(seeker, response)"],
        },
        "embedding": {"model": embedding_model, "batch_size": batch_size},
        "score": "<m> = sum(level * p(level)); empathy = mean of er, ip, ex (0-2)",
        "sklearn_version": sklearn.__version__,
        "model_file": MODEL_FILE,
    }


def _forget_object_ids(obj, seen: set | None = None) -> None:
    """Drop the memory address a fitted TfidfVectorizer keeps (``_stop_words_id``, a cache key):
    it differs per process and would make the pickled scorer, and so dvc.lock, irreproducible."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, TfidfVectorizer):
        obj.__dict__.pop("_stop_words_id", None)  # sklearn recomputes it on the next analyzer build
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else getattr(obj, "__dict__", {}).values()
    for child in children:
        if isinstance(child, (dict, list, tuple)) or hasattr(child, "get_params"):
            _forget_object_ids(child, seen)


def _dump_canonical(obj, path: Path) -> None:
    """Pickle without the memo, so the bytes depend on the models' values only, not on which equal
    objects happened to be shared in this process (the memo writes a shared object once)."""
    with path.open("wb") as fh:
        pickler = pickle.Pickler(fh, protocol=4)
        pickler.fast = True
        pickler.dump(obj)


def save_scorer(models: Mapping[str, VotingClassifier], manifest: dict, directory: str | Path) -> None:
    """The models and manifest, written atomically: a crash never leaves a half-written scorer."""
    with atomic_dir(directory) as tmp:
        for model in models.values():
            _forget_object_ids(model)
        _dump_canonical(dict(models), tmp / MODEL_FILE)
        write_json_atomic(tmp / MANIFEST_FILE, manifest)


def load_scorer(path: str | Path, cache_dir: str | Path | None = None) -> EmpathyScorer:
    """The fitted scorer, with the embedding model it was trained with (from its manifest)."""
    path = Path(path)
    manifest_path, model_path = path / MANIFEST_FILE, path / MODEL_FILE
    if not manifest_path.is_file() or not model_path.is_file():
        raise InputError(f"{path}: no fitted empathy scorer ({MANIFEST_FILE} and {MODEL_FILE}); run dvc repro train_scorer")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    with model_path.open("rb") as fh:
        models = pickle.load(fh)  # our own DVC output, never a downloaded file
    missing = [m for m in MECHANISMS if m not in models]
    if missing:
        raise InputError(f"{model_path}: no model for {', '.join(missing)}; rerun dvc repro train_scorer")
    embedding = manifest["embedding"]
    return EmpathyScorer(models, Embedder(embedding["model"], embedding["batch_size"], cache_dir))


def score(pairs: Sequence[tuple[str, str]], scorer_dir: str | Path) -> list[dict]:
    """One-off scoring; to score several batches, call ``load_scorer`` once and reuse it."""
    return load_scorer(scorer_dir).score(pairs)


def score_records(records: Sequence[dict], scorer: EmpathyScorer, source: str = "records") -> list[dict]:
    """Each pair record (seeker post = ``explanation``) with its scores added, floats to 4 places."""
    for n, record in enumerate(records, start=1):
        if not isinstance(record["explanation"], str) or not normalise_text(record["explanation"]) or not isinstance(record["response"], str):
            raise InputError(f"{source}: record {n} (id={record.get('id')}): explanation must be a non-empty string and response a string; regenerate the file with dvc repro")
    scores = scorer.score([(r["explanation"], r["response"]) for r in records])
    return [{**record, **{k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}} for record, s in zip(records, scores)]


def summarise(scored: Sequence[Mapping]) -> dict:
    """Mean and (population) std of er, ip, ex and empathy, and each mechanism's level counts."""
    summary: dict = {"n": len(scored)}
    for key in (*MECHANISMS, "empathy"):
        values = np.array([r[key] for r in scored], dtype=float)
        summary[key] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4)} if len(values) else {"mean": None, "std": None}
    summary["levels"] = {m: {str(level): sum(r[f"{m}_level"] == level for r in scored) for level in LEVELS} for m in MECHANISMS}
    return summary
