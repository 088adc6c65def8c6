"""Tagging new sentences with a trained checkpoint: the Python API behind ``evaluate.py text=``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from slotfill.checkpoint import load_checkpoint
from slotfill.data.bio import spans
from slotfill.data.example import Example
from slotfill.errors import CheckpointError, first_line
from slotfill.evaluation import Predictions, predict
from slotfill.model import Tagger
from slotfill.model import lstm_kernel as kernels
from slotfill.model.encoder import use_kernel
from slotfill.model.ensemble import Ensemble, first_mismatch
from slotfill.vocab import LabelSet, TagSet, Vocab


class SlotTagger:
    """A trained tagger with its vocabulary, ready to tag text.

    Example:
        >>> tagger = SlotTagger.load("outputs/airline/RUN/checkpoints/best.pt")
        >>> tagger.tag(["show flights from boston to denver"])
        [{'text': 'show flights from boston to denver', 'tokens': [...], 'tags': [...],
          'slots': [{'type': 'fromloc.city_name', 'text': 'boston', 'start': 3, 'end': 4}, ...],
          'intent': 'atis_flight'}]
    """

    def __init__(
        self,
        model: Tagger | Ensemble,
        vocab: Vocab,
        tagset: TagSet,
        labels: LabelSet | None = None,
        device: torch.device | str = "cpu",
        config: dict[str, Any] | None = None,
    ):
        self.model = model.to(device).eval()
        self.vocab = vocab
        self.tagset = tagset
        self.labels = labels
        self.device = torch.device(device)
        self.config = config or {}

    @classmethod
    def load(
        cls, path: str | Path | Sequence[str | Path], device: torch.device | str = "cpu", lstm_kernel: str | None = None
    ) -> SlotTagger:
        """Rebuild the model from a checkpoint alone (read with ``weights_only=True``).

        ``lstm_kernel`` (``auto``, ``slotfill``, ``torch``; see
        :mod:`slotfill.model.lstm_kernel`): None decodes with the kernel the (first) checkpoint
        was trained with, so that its scores repeat the trainer's.

        An ensemble checkpoint (``trainer.ensemble``) loads as an :class:`Ensemble` of its members.
        A list of checkpoints (or run folders) loads as one :class:`Ensemble` of all their taggers,
        e.g. the runs of a seed sweep; they must share vocabulary, tags and intents.
        """
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        if not paths:
            raise CheckpointError("ckpt_path=[]: name at least one checkpoint or run folder")
        states = [load_checkpoint(p, map_location=device) for p in paths]
        model = build_tagger(states[0], paths[0]) if len(states) == 1 else ensemble_of(states, paths)
        state = states[0]
        args = state["members"][0]["model_args"] if "members" in state else state["model_args"]
        use_kernel(
            model, kernels.for_checkpoint(state.get("lstm_kernel"), lstm_kernel, args["cell"], device, args["bidirectional"])
        )
        model.set_tag_constraints(state["tags"])
        labels = LabelSet.from_state(state["intents"]) if state.get("intents") else None
        return cls(
            model, Vocab.from_state(state["vocab"]), TagSet.from_state(state["tags"]), labels,
            device, state.get("config"),
        )

    def predict(
        self, examples: Sequence[Example], batch_size: int = 256, constrained: bool | None = None
    ) -> Predictions:
        """Tags (and intents) for non-empty examples, in order.

        ``constrained`` overrides the checkpoint's BIO-constrained decoding setting.
        """
        return predict(self.model, examples, self.vocab, self.tagset, self.labels, batch_size, self.device, constrained)

    def tag(
        self, sentences: Iterable[str | Sequence[str]], batch_size: int = 256, constrained: bool | None = None
    ) -> list[dict[str, Any]]:
        """Tag sentences given as strings (split on whitespace) or token lists.

        Returns one dict per sentence: ``text``, ``tokens``, ``tags``, ``slots`` (``type``,
        ``text``, ``start``, ``end`` token offsets, end exclusive) and ``intent`` when the
        model has an intent head. An empty sentence gets empty lists. ``constrained``
        overrides the checkpoint's BIO-constrained decoding setting.
        """
        token_lists = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        nonempty = [i for i, toks in enumerate(token_lists) if toks]
        preds = self.predict([Example(tuple(token_lists[i])) for i in nonempty], batch_size, constrained)
        results: list[dict[str, Any]] = []
        for tokens in token_lists:
            results.append({"text": " ".join(tokens), "tokens": tokens, "tags": [], "slots": []})
            if self.labels is not None:
                results[-1]["intent"] = None
        for j, i in enumerate(nonempty):
            tokens, tags = token_lists[i], preds.tags[j]
            results[i]["tags"] = tags
            results[i]["slots"] = [
                {"type": s.type, "text": " ".join(tokens[s.start : s.end]), "start": s.start, "end": s.end}
                for s in spans(tags)
            ]
            if preds.intents is not None:
                results[i]["intent"] = preds.intents[j]
        return results


def build_tagger(state: dict[str, Any], path: str | Path) -> Tagger | Ensemble:
    """The model a checkpoint describes, with its weights: a :class:`Tagger`, or an
    :class:`Ensemble` for a checkpoint with ``members`` (each ``model_args`` + ``model_state``)."""
    try:
        if "members" in state:
            return Ensemble([_tagger(member) for member in state["members"]])
        return _tagger(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its weights do not fit the model it describes ({first_line(err)})") from None


def build_taggers(state: dict[str, Any], path: str | Path) -> list[Tagger]:
    """The taggers a checkpoint holds: its members for an ensemble checkpoint, else the one."""
    model = build_tagger(state, path)
    return list(model.members) if isinstance(model, Ensemble) else [model]


def ensemble_of(states: Sequence[dict[str, Any]], paths: Sequence[str | Path]) -> Ensemble:
    """One :class:`Ensemble` of every tagger in several checkpoints (an ensemble checkpoint
    gives all its members). They must index the same words, tags and intents, and decode alike.
    """
    first = states[0]
    for path, state in zip(paths[1:], states[1:]):
        if state["vocab"] != first["vocab"] or state["tags"] != first["tags"] or state.get("intents") != first.get("intents"):
            raise CheckpointError(
                f"{path}: its vocabulary, tags or intents differ from {paths[0]}'s -- an ensemble needs "
                "taggers trained on the same data with the same vocab options"
            )
    members: list[Tagger] = []
    owners: list[str | Path] = []
    for path, state in zip(paths, states):
        taggers = build_taggers(state, path)
        members += taggers
        owners += [path] * len(taggers)
    mismatch = first_mismatch(members)
    if mismatch is not None:
        i, differs = mismatch
        raise CheckpointError(
            f"{owners[i]}: its tagger differs from {paths[0]}'s in {', '.join(differs)} -- an ensemble "
            "decodes taggers with the same outputs and decoding"
        )
    return Ensemble(members)


def _tagger(state: dict[str, Any]) -> Tagger:
    model = Tagger(**state["model_args"])
    model.load_state_dict(state["model_state"])
    return model
