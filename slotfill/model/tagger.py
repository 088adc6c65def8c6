"""The slot tagger: word representation -> recurrent encoder -> output layer(s)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slotfill.model.attention import SelfAttention
from slotfill.model.crf import CRF, bio_constraints, constrained_decode
from slotfill.model.embed import WordRepresentation
from slotfill.model.encoder import RecurrentEncoder
from slotfill.model.heads import IntentHead, SoftmaxHead
from slotfill.model.lm import LanguageModelHead

LOSS_REDUCTIONS = ("sum", "mean")
IGNORE = -100  # tag index at padded positions for the flat cross-entropy
HEADS = ("softmax", "crf")


class Tagger(nn.Module):
    """A recurrent slot tagger with an optional joint intent classifier.

    All constructor arguments are plain values and are kept in ``self.hparams`` so that a
    checkpoint can rebuild the model from itself alone.

    Args:
        vocab_size: words including padding and unknown.
        num_tags: slot tags (BIO) seen in training.
        num_intents: intent labels seen in training; 0 for no intent head.
        embedding_dim: word vector size.
        hidden_size: recurrent state size per direction.
        cell: ``rnn`` (Elman), ``gru`` or ``lstm``.
        nonlinearity: ``tanh`` or ``relu`` for ``rnn``.
        bidirectional: run both directions.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers, and the default for the two below.
        embedding_dropout: dropout on the word representation (``None``: ``dropout``).
        output_dropout: dropout before the output layers (``None``: ``dropout``).
        locked_dropout: variational dropout: on the word representation, between layers and
            before the slot layer, each utterance draws one mask and drops the same features
            at every position (:class:`~slotfill.model.dropout.Dropout`); ``False``: a fresh
            mask per token. The intent layer's pooled input is one row per utterance either
            way, and the language-model loss's dropout stays per token.
        context_window: concatenate the embeddings of +-k neighbours.
        intent_loss_weight: weight of the intent loss added to each utterance's slot loss.
        head: ``softmax`` (independent per-token distributions, the seed's output layer) or
            ``crf`` (a linear-chain CRF over the same per-token scores).
        constrained_decoding: decode only BIO-valid paths (Viterbi under the constraints set
            by :meth:`set_tag_constraints`); ``False``: per-token argmax (softmax) or
            unconstrained Viterbi (CRF).
        num_chars: character vocabulary size for character CNN word features; 0: none.
        char_dim, char_filters, char_kernel: the character CNN's sizes.
        attention: add self-attention over the encoder's states (:class:`SelfAttention`,
            queries and keys of ``hidden_size``); both heads read ``[state ; context]``.
        lm_loss_weight: weight of an auxiliary language-modelling loss in training
            (:class:`LanguageModelHead`: the first layer's forward states predict the next
            word, its backward states the previous one); 0 for none.
        lm_vocab: words that loss predicts, the most frequent first (the rest are ``<unk>``).
        lm_hidden: size of that loss's tanh layer.
        lm_cutoffs: where that loss's adaptive softmax starts its rarer word clusters (empty:
            a full softmax over ``lm_vocab`` words); see :class:`LanguageModelHead`.
        intent_slot_bias: with an intent head, add to every token's slot scores the intent
            distribution times a learned (intents x tags) matrix, so that the predicted intent
            shifts the tags (ATIS labels a city ``city_name`` in ground-service questions and
            ``toloc.city_name`` in flight questions); zero at initialisation.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_tags: int,
        num_intents: int = 0,
        embedding_dim: int = 100,
        hidden_size: int = 128,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        bidirectional: bool = True,
        num_layers: int = 1,
        dropout: float = 0.3,
        embedding_dropout: float | None = None,
        output_dropout: float | None = None,
        locked_dropout: bool = False,
        context_window: int = 0,
        intent_loss_weight: float = 1.0,
        head: str = "softmax",
        constrained_decoding: bool = False,
        num_chars: int = 0,
        char_dim: int = 30,
        char_filters: int = 50,
        char_kernel: int = 3,
        attention: bool = False,
        lm_loss_weight: float = 0.0,
        lm_vocab: int = 5000,
        lm_hidden: int = 50,
        lm_cutoffs: Sequence[int] = (),
        intent_slot_bias: bool = False,
    ):
        super().__init__()
        self.hparams: dict[str, Any] = {
            "vocab_size": vocab_size, "num_tags": num_tags, "num_intents": num_intents,
            "embedding_dim": embedding_dim, "hidden_size": hidden_size, "cell": cell,
            "nonlinearity": nonlinearity, "bidirectional": bidirectional,
            "num_layers": num_layers, "dropout": dropout,
            "embedding_dropout": embedding_dropout, "output_dropout": output_dropout,
            "locked_dropout": locked_dropout,
            "context_window": context_window, "intent_loss_weight": intent_loss_weight,
            "head": head, "constrained_decoding": constrained_decoding,
            "num_chars": num_chars, "char_dim": char_dim, "char_filters": char_filters,
            "char_kernel": char_kernel, "attention": attention,
            "lm_loss_weight": lm_loss_weight, "lm_vocab": lm_vocab, "lm_hidden": lm_hidden,
            "lm_cutoffs": list(lm_cutoffs), "intent_slot_bias": intent_slot_bias,
        }
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        emb_p = dropout if embedding_dropout is None else embedding_dropout
        out_p = dropout if output_dropout is None else output_dropout
        self.words = WordRepresentation(
            vocab_size, embedding_dim, context_window, emb_p, num_chars, char_dim, char_filters, char_kernel,
            locked_dropout,
        )
        self.encoder = RecurrentEncoder(
            self.words.output_dim, hidden_size, cell, nonlinearity, bidirectional, num_layers, dropout,
            locked_dropout,
        )
        self.attention = SelfAttention(self.encoder.output_dim, hidden_size) if attention else None
        states_dim = self.encoder.output_dim if self.attention is None else self.attention.output_dim
        self.slots = SoftmaxHead(states_dim, num_tags, out_p, locked_dropout)
        self.intents = IntentHead(states_dim, num_intents, out_p) if num_intents else None
        self.intent_loss_weight = intent_loss_weight
        if intent_slot_bias and not num_intents:
            raise ValueError("intent_slot_bias needs an intent head (num_intents > 0)")
        self.intent_bias = nn.Parameter(torch.zeros(num_intents, num_tags)) if intent_slot_bias else None
        self.crf = CRF(num_tags) if head == "crf" else None
        self.lm = None
        if lm_loss_weight > 0:
            self.lm = LanguageModelHead(
                hidden_size, self.encoder.directions, min(lm_vocab, vocab_size), lm_hidden, out_p, lm_cutoffs
            )
        self.lm_loss_weight = lm_loss_weight
        self.constrained_decoding = constrained_decoding
        # BIO constraints derive from the tag names (saved with every checkpoint), so they are
        # not part of the state dict; all-allowed until set_tag_constraints.
        self.register_buffer("allowed_start", torch.ones(num_tags, dtype=torch.bool), persistent=False)
        self.register_buffer(
            "allowed_transitions", torch.ones(num_tags, num_tags, dtype=torch.bool), persistent=False
        )

    def set_tag_constraints(self, tags: list[str]) -> None:
        """Forbid the starts and transitions that IOB2 forbids for these tag names."""
        start, allowed = bio_constraints(tags)
        self.allowed_start.copy_(start)
        self.allowed_transitions.copy_(allowed)

    def forward(
        self,
        words: torch.Tensor,
        lengths: torch.Tensor,
        tags: torch.Tensor | None = None,
        intents: torch.Tensor | None = None,
        reduction: str = "sum",
        chars: torch.Tensor | None = None,
        lm_words: torch.Tensor | None = None,
        soft: dict[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Score a padded batch.

        Args:
            words: (B, T) word indices, 0 at padding.
            lengths: (B,) real lengths.
            tags: (B, T) gold tag indices (any value at padding) to compute the loss.
            intents: (B,) gold intent indices, when the model has an intent head.
            reduction: ``sum``: each utterance's loss is the sum of its tokens'
                cross-entropies (the seed's loss), averaged over the utterances of the batch;
                ``mean``: the slot loss is averaged over all real tokens of the batch.
            chars: (B, T, C) character indices, for a model with character features.
            lm_words: (B, T) the words the language-modelling loss predicts, for a model with
                one (``lm_loss_weight > 0``): the training words before any ``<unk>``
                dropout; ``None``: ``words``.
            soft: a teacher's soft labels for the batch, to distil (see :meth:`loss`).

        Returns:
            ``logits`` (B, T, C), ``mask`` (B, T), ``intent_logits`` (B, I) if any, and
            ``loss`` (scalar) when ``tags`` is given.
        """
        mask = torch.arange(words.size(1), device=words.device) < lengths.to(words.device).unsqueeze(1)
        with_lm = self.lm is not None and tags is not None
        if with_lm:
            states, first = self.encode(words, lengths, mask, chars, first_layer=True)
        else:
            states = self.encode(words, lengths, mask, chars)
        logits, intent_logits = self.score(states, mask)
        out: dict[str, torch.Tensor] = {"logits": logits, "mask": mask}
        if intent_logits is not None:
            out["intent_logits"] = intent_logits
        if with_lm:
            out["lm_loss"] = self.lm.loss(first, words if lm_words is None else lm_words, mask)
        if tags is not None:
            out["loss"] = self.loss(out, tags, intents, reduction, soft)
        return out

    def encode(
        self,
        words: torch.Tensor,
        lengths: torch.Tensor,
        mask: torch.Tensor,
        chars: torch.Tensor | None = None,
        first_layer: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The states both heads read: (B, T, H) from the encoder, then [state ; context] with attention.

        ``first_layer``: also the encoder's first-layer states (what the language-model loss reads).
        """
        encoded = self.encoder(
            self.words(words, chars), lengths, first_layer=first_layer, lookup=self.words.rows_of(words)
        )
        states, first = encoded if first_layer else (encoded, None)
        if self.attention is not None:
            states = self.attention(states, mask)
        return (states, first) if first_layer else states

    def score(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Slot scores (B, T, C) and intent scores (B, I) (``None`` without an intent head) from :meth:`encode`'s states.

        With ``intent_slot_bias``, every token's slot scores gain softmax(intent scores) @ the
        (I, C) bias matrix: the same shift for all tokens of an utterance, differentiable, so
        the slot loss trains the intent head too.
        """
        slot_scores = self.slots(states)
        if self.intents is None:
            return slot_scores, None
        intent_scores = self.intents(states, mask)
        if self.intent_bias is not None:
            slot_scores = slot_scores + (intent_scores.softmax(-1) @ self.intent_bias).unsqueeze(1)
        return slot_scores, intent_scores

    def loss(
        self,
        out: dict[str, torch.Tensor],
        tags: torch.Tensor,
        intents: torch.Tensor | None,
        reduction: str = "sum",
        soft: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """The training loss of :meth:`forward`'s ``out`` against gold ``tags`` and ``intents``.

        ``soft`` distils a teacher (:mod:`slotfill.distill`): ``weight`` a in [0, 1],
        ``tokens`` (B, T, C) the teacher's tag marginals (zero at padding), ``pairs`` (C, C)
        its expected transition counts summed over the batch, and ``intents`` (B, I) its
        intent distribution or ``None``. Each utterance's slot loss becomes (1 - a) x the gold
        loss + a x the cross-entropy from the teacher's distribution to the model's: over tag
        paths for a CRF (log Z minus the teacher's expected path score), over each token's
        tag for a softmax head. The intent loss mixes the same way.
        """
        logits, mask = out["logits"], out["mask"]
        if reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"reduction must be one of {LOSS_REDUCTIONS}, got {reduction!r}")
        a = 0.0 if soft is None else float(soft["weight"])
        if self.crf is not None:
            gold_tags = tags.masked_fill(~mask, 0)
            if soft is None:
                total = self.crf.nll(logits, gold_tags, mask).sum()
            else:  # log Z once: (1 - a)(log Z - gold score) + a (log Z - expected score)
                total = (
                    self.crf.log_partition(logits, mask).sum()
                    - (1 - a) * self.crf.path_score(logits, gold_tags, mask).sum()
                    - a * self.crf.expected_score(logits, mask, soft["tokens"], soft["pairs"])
                )
        else:
            # Summed over the real tokens of the batch in one flat call (padding ignored): the
            # same number as summing each utterance's tokens and then the utterances, at a
            # quarter of the cost of a per-token loss that is masked and reduced afterwards.
            total = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), tags.masked_fill(~mask, IGNORE).reshape(-1),
                reduction="sum", ignore_index=IGNORE,
            )
            if soft is not None:
                total = (1 - a) * total - a * (soft["tokens"] * logits.log_softmax(-1)).sum()
        if "lm_loss" in out:  # summed over tokens and directions like the slot loss
            total = total + self.lm_loss_weight * out["lm_loss"]
        # sum: the mean over utterances of each utterance's summed loss; mean: per real token.
        loss = total / mask.size(0) if reduction == "sum" else total / mask.sum()
        if self.intents is not None and intents is not None:
            intent_loss = F.cross_entropy(out["intent_logits"], intents)
            if soft is not None and soft.get("intents") is not None:
                taught = -(soft["intents"] * out["intent_logits"].log_softmax(-1)).sum(-1).mean()
                intent_loss = (1 - a) * intent_loss + a * taught
            loss = loss + self.intent_loss_weight * intent_loss
        return loss

    @torch.no_grad()
    def predict(
        self,
        words: torch.Tensor,
        lengths: torch.Tensor,
        constrained: bool | None = None,
        chars: torch.Tensor | None = None,
    ) -> tuple[list[list[int]], list[int] | None]:
        """Tag indices per real token (and an intent index per utterance).

        ``constrained`` overrides the model's ``constrained_decoding`` setting.
        """
        return self.decode(self.forward(words, lengths, chars=chars), lengths, constrained)

    def decode(
        self,
        out: dict[str, torch.Tensor],
        lengths: torch.Tensor,
        constrained: bool | None = None,
        crf: CRF | None = None,
    ) -> tuple[list[list[int]], list[int] | None]:
        """:meth:`predict`'s decoding of :meth:`forward`'s ``out`` (``crf``: another CRF's scores than this model's)."""
        logits, mask = out["logits"], out["mask"]
        constrained = self.constrained_decoding if constrained is None else constrained
        allowed = (self.allowed_start, self.allowed_transitions) if constrained else (None, None)
        crf = self.crf if crf is None else crf
        if crf is not None:
            paths = crf.decode(logits, mask, *allowed)
        elif constrained:
            paths = constrained_decode(logits.log_softmax(-1), mask, *allowed)
        else:
            best = logits.argmax(dim=-1).tolist()  # one conversion, then plain list slices
            paths = [row[:n] for row, n in zip(best, lengths.tolist())]
        intents = out["intent_logits"].argmax(dim=-1).tolist() if "intent_logits" in out else None
        return paths, intents
