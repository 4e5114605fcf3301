"""The comparison systems of the scorer's cross-validation: the previous scorer (``baseline``, a soft
vote of two logistic regressions per mechanism), its TF-IDF half alone (``tfidf_lr``) and the
majority class (``majority``). Only the pair encoder (``encoder``) is shipped as the scorer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from synthempathy.params import BaselineParams

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


def fit_baselines(X: pd.DataFrame, y: np.ndarray, params: BaselineParams) -> dict[str, object]:
    """The three comparison systems of one mechanism, fitted on (X, y) from ``features.frame_features``.

    ``baseline`` soft-votes (mean probability) the text and embedding models: each beat the other
    on some mechanism in CV, and their average beat both. ``tfidf_lr`` is its own fitted text
    model (the same settings on the same rows), so model vs tfidf_lr isolates what embeddings add.
    """
    voting = VotingClassifier([("text", text_model(params.text_C)), ("embedding", embedding_model(params.embedding_C))], voting="soft").fit(X, y)
    return {"baseline": voting, "tfidf_lr": voting.named_estimators_["text"], "majority": DummyClassifier(strategy="most_frequent").fit(X, y)}
