"""slotfill: recurrent slot-filling taggers for ATIS-style data.

>>> from slotfill import SlotTagger
>>> tagger = SlotTagger.load("outputs/airline/RUN/checkpoints/best.pt")
>>> tagger.tag(["show flights from boston to denver"])[0]["slots"]
"""

__version__ = "0.1.0"

from slotfill.inference import SlotTagger  # noqa: E402

__all__ = ["SlotTagger", "__version__"]
