"""slotfill: recurrent slot-filling taggers for ATIS-style data.

>>> from slotfill import SlotTagger
>>> tagger = SlotTagger.load("outputs/airline/RUN/checkpoints/best.pt")
>>> tagger.tag(["show flights from boston to denver"])[0]["slots"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["SlotTagger", "__version__"]

if TYPE_CHECKING:
    from slotfill.inference import SlotTagger


def __getattr__(name: str) -> Any:
    # SlotTagger imports torch and seqeval (~2 s): only when asked for, so that the command
    # lines (whose own imports wait until the config is read) report a config error at once.
    if name == "SlotTagger":
        from slotfill.inference import SlotTagger

        return SlotTagger
    raise AttributeError(f"module 'slotfill' has no attribute {name!r}")
