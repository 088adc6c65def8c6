"""Decoding a split, scoring it, and writing predictions."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from slotfill.data.batching import Batch, EncodedSplit
from slotfill.data.example import Example
from slotfill.metrics import slot_scores
from slotfill.model import Tagger
from slotfill.vocab import LabelSet, TagSet, Vocab

log = logging.getLogger(__name__)
T = TypeVar("T")


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (process id, threads): a forked child gets its own


def map_batches(fn: Callable[[Batch], T], batches: Sequence[Batch], device: torch.device | str = "cpu") -> list[T]:
    """``[fn(b) for b in batches]``; on a CPU with n >= 2 threads, n batches at a time, one thread each.

    A batch's products are small (a few hundred rows), and splitting each over both cores
    costs a synchronisation per time step: tagging ATIS's test split at batch 256 took 47 ms
    with two threads per batch and 37 ms with two batches at once on one thread each. The
    workers are a persistent pool of n threads; each sets one intra-op thread before its
    batch, and the caller's n is set back afterwards (PyTorch keeps one process-wide count).
    """
    threads = torch.get_num_threads()
    if torch.device(device).type != "cpu" or threads < 2 or len(batches) < 2:
        return [fn(b) for b in batches]
    key = (os.getpid(), threads)  # a pool's threads do not survive a fork
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(threads, "slotfill-predict")

    def one_thread(batch: Batch) -> T:
        torch.set_num_threads(1)
        return fn(batch)

    try:
        return list(pool.map(one_thread, batches))
    finally:
        torch.set_num_threads(threads)


@dataclass
class Predictions:
    tags: list[list[str]]
    intents: list[str] | None


@torch.inference_mode()
def predict(
    model: Tagger,
    examples: Sequence[Example] | EncodedSplit,
    vocab: Vocab,
    tagset: TagSet,
    labels: LabelSet | None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    constrained: bool | None = None,
) -> Predictions:
    """Tag strings (and intents, if the model has an intent head) in the examples' order.

    ``constrained`` overrides the model's BIO-constrained decoding setting.
    """
    split = examples if isinstance(examples, EncodedSplit) else EncodedSplit(examples, vocab)
    was_training = model.training
    if was_training:  # Module.eval() walks every submodule: skip it when already in eval mode
        model.eval()
    tags: list[list[str] | None] = [None] * len(split)
    intents: list[str | None] | None = [None] * len(split) if model.intents is not None and labels else None
    batches = split.batches(batch_size)

    def tag_batch(batch: Batch) -> tuple[list[list[int]], list[int] | None]:
        with torch.inference_mode():  # thread-local: the workers need their own
            chars = None if batch.chars is None else batch.chars.to(device)
            return model.predict(batch.words.to(device), batch.lengths, constrained, chars)

    try:
        for batch, (paths, intent_ids) in zip(batches, map_batches(tag_batch, batches, device)):
            rows = batch.index.tolist()
            for row, path in zip(rows, paths):
                tags[row] = tagset.decode(path)
            if intents is not None and intent_ids is not None:
                for row, intent in zip(rows, intent_ids):
                    intents[row] = labels.itos[intent]
    finally:
        if was_training:
            model.train()
    return Predictions(tags, intents)  # type: ignore[arg-type]


def unseen_gold_tags(examples: Sequence[Example], tagset: TagSet) -> list[str]:
    """Gold tags the model never saw in training (they can only be missed)."""
    return sorted({t for ex in examples if ex.tags for t in ex.tags if t not in tagset})


def score(examples: Sequence[Example], preds: Predictions) -> dict[str, Any]:
    gold = [list(ex.tags) for ex in examples]
    gold_intents = [ex.intent for ex in examples] if preds.intents is not None else None
    return slot_scores(gold, preds.tags, gold_intents, preds.intents)


DECODINGS = (("unconstrained", False), ("constrained", True))
_DECODING_KEYS = ("precision", "recall", "f1", "strict_f1", "sentence_accuracy")


def score_both_decodings(
    model: Tagger,
    examples: Sequence[Example],
    vocab: Vocab,
    tagset: TagSet,
    labels: LabelSet | None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    constrained: bool | None = None,
) -> tuple[dict[str, Any], Predictions]:
    """Decode once without and once with BIO constraints, and score both.

    Returns the full scores of the chosen decoding (``constrained``, or the model's setting
    when ``None``) with ``by_decoding`` (slot P/R/F1 of each decoding, side by side) added,
    and that decoding's predictions.
    """
    chosen = model.constrained_decoding if constrained is None else constrained
    split = EncodedSplit(examples, vocab)
    gold = [list(ex.tags) for ex in examples]
    by_decoding: dict[str, dict[str, float]] = {}
    for name, flag in DECODINGS:
        preds = predict(model, split, vocab, tagset, labels, batch_size, device, flag)
        if flag == chosen:
            chosen_preds, scores = preds, score(examples, preds)
            summary = scores
        else:
            summary = slot_scores(gold, preds.tags)
        by_decoding[name] = {k: summary[k] for k in _DECODING_KEYS}
    scores["by_decoding"] = by_decoding
    return scores, chosen_preds


def write_predictions(examples: Sequence[Example], preds: Predictions, path: str | Path) -> None:
    """CoNLL columns ``token gold predicted`` (``-`` when there is no gold), blank line between utterances."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for ex, pred in zip(examples, preds.tags):
            gold = ex.tags if ex.tags is not None else ["-"] * len(ex)
            for token, g, p in zip(ex.tokens, gold, pred):
                handle.write(f"{token} {g} {p}\n")
            handle.write("\n")
