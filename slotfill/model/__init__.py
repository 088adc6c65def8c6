"""Model parts: word representation, recurrent encoder, output heads, and the tagger."""

from slotfill.model.attention import SelfAttention
from slotfill.model.embed import WordRepresentation, read_vectors
from slotfill.model.encoder import CELLS, NONLINEARITIES, RecurrentEncoder
from slotfill.model.heads import IntentHead, SoftmaxHead
from slotfill.model.crf import CRF, bio_constraints, constrained_decode, viterbi
from slotfill.model.tagger import HEADS, LOSS_REDUCTIONS, Tagger

__all__ = [
    "CELLS", "CRF", "HEADS", "LOSS_REDUCTIONS", "bio_constraints", "constrained_decode", "viterbi", "NONLINEARITIES", "IntentHead", "RecurrentEncoder",
    "SelfAttention", "SoftmaxHead", "Tagger", "WordRepresentation", "read_vectors",
]
