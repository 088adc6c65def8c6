"""Model parts: word representation, recurrent encoder, output heads, and the tagger."""

from slotfill.model.embed import WordRepresentation, read_vectors
from slotfill.model.encoder import CELLS, NONLINEARITIES, RecurrentEncoder
from slotfill.model.heads import IntentHead, SoftmaxHead
from slotfill.model.tagger import LOSS_REDUCTIONS, Tagger

__all__ = [
    "CELLS", "LOSS_REDUCTIONS", "NONLINEARITIES", "IntentHead", "RecurrentEncoder",
    "SoftmaxHead", "Tagger", "WordRepresentation", "read_vectors",
]
