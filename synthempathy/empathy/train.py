"""Training the scorer (the ``train_scorer`` stage) and the systems of its cross-validation
(``make scorer-cv``), all from one table of pairs (``data.pairs_table``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from synthempathy.embeddings import Embedder
from synthempathy.params import TrainScorerParams

from .baseline import fit_baselines
from .cv import FoldPredictor, classification_metrics
from .data import MECHANISMS
from .encoder import FrozenEncoder, PairModel, fit_pair_model, levels, predict_proba, torch_threads
from .features import frame_features

log = logging.getLogger(__name__)


def pair_states(frozen: FrozenEncoder, table: pd.DataFrame, threads: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Frozen token states of each row's seeker post and response (each distinct text once)."""
    texts = list(dict.fromkeys([*table["seeker"], *table["response"]]))
    log.info("encoding %d distinct texts with the frozen encoder layers", len(texts))
    with torch_threads(threads):
        states = dict(zip(texts, frozen.states(texts, progress=True), strict=True))
    return [states[t] for t in table["seeker"]], [states[t] for t in table["response"]]


def labels(table: pd.DataFrame) -> np.ndarray:
    return table[list(MECHANISMS)].to_numpy()


def train_scorer(table: pd.DataFrame, heldout: Iterable[str], params: TrainScorerParams, seed: int) -> tuple[PairModel, dict]:
    """Fit the pair encoder on every pair whose post is not held out (see ``fit_on_states``)."""
    frozen = FrozenEncoder(params.encoder.tuned_layers, params.encoder.max_tokens)
    seekers, responses = pair_states(frozen, table, params.encoder.threads)
    return fit_on_states(table, seekers, responses, frozen, heldout, params, seed)


def fit_on_states(
    table: pd.DataFrame,
    seekers: list[torch.Tensor],
    responses: list[torch.Tensor],
    frozen: FrozenEncoder,
    heldout: Iterable[str],
    params: TrainScorerParams,
    seed: int,
) -> tuple[PairModel, dict]:
    """Fit on the pairs whose post is not held out, given each row's frozen states.

    Returns the model and metrics: the model and the majority class on the held-out posts' pairs
    (never trained on), per mechanism. The grouped CV against the baselines is ``make scorer-cv``.
    """
    is_heldout = table["sp_id"].isin(set(heldout)).to_numpy()
    train, test = np.flatnonzero(~is_heldout), np.flatnonzero(is_heldout)
    log.info("training on %d pairs (%d posts); %d held-out pairs", len(train), table["sp_id"][~is_heldout].nunique(), len(test))
    y = labels(table)
    model = fit_pair_model(frozen.top, [seekers[i] for i in train], [responses[i] for i in train], y[train], params.encoder, seed)
    metrics: dict = {"heldout_posts": int(table["sp_id"][is_heldout].nunique()), "train_pairs": len(train), "heldout_pairs": len(test), "heldout": {}}
    if len(test):
        probabilities = predict_proba(model, [seekers[i] for i in test], [responses[i] for i in test], params.encoder.threads)
        majority = np.zeros_like(probabilities)
        for j in range(len(MECHANISMS)):
            majority[:, j, np.bincount(y[train, j]).argmax()] = 1.0
        systems = {"model": (probabilities, levels(model, probabilities)), "majority": (majority, majority.argmax(-1))}
        for j, m in enumerate(MECHANISMS):
            metrics["heldout"][m] = {
                system: {k: round(v, 4) for k, v in classification_metrics(y[test, j], p[:, j], lv[:, j]).items()} for system, (p, lv) in systems.items()
            }
    return model, metrics


def systems_predictor(table: pd.DataFrame, params: TrainScorerParams, seed: int, embedder: Embedder) -> FoldPredictor:
    """For ``cv.cross_validate``: per fold, the pair encoder and the baselines fitted on the
    training rows, and their probabilities on the test rows."""
    frozen = FrozenEncoder(params.encoder.tuned_layers, params.encoder.max_tokens)
    seekers, responses = pair_states(frozen, table, params.encoder.threads)
    X, y = frame_features(table, embedder), labels(table)

    def predict(train: np.ndarray, test: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        model = fit_pair_model(frozen.top, [seekers[i] for i in train], [responses[i] for i in train], y[train], params.encoder, seed)
        probabilities = {"model": predict_proba(model, [seekers[i] for i in test], [responses[i] for i in test], params.encoder.threads)}
        for j, _ in enumerate(MECHANISMS):
            for system, estimator in fit_baselines(X.iloc[train], y[train, j], params.baseline).items():
                probabilities.setdefault(system, np.zeros_like(probabilities["model"]))[:, j, estimator.classes_] = estimator.predict_proba(X.iloc[test])
        return {system: (p, levels(model, p) if system == "model" else p.argmax(-1)) for system, p in probabilities.items()}

    return predict
