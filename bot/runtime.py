"""Process-level tuning shared by every way the bot runs (Discord, terminal play, benchmarks).

``freeze_startup_heap()`` moves every object alive after start-up (imported modules: discord.py,
openai, pydantic, tiktoken's tables, the cogs) into the garbage collector's permanent generation with
``gc.freeze()``, so later full collections scan only what the game allocates while playing. Python's
documentation describes ``gc.freeze`` for exactly this (objects that live as long as the process).

Measured with ``python -m bench --only overhead`` (200 channels, 5,000 stored messages each, 2 cores):
full collections paused the event loop for up to ~50 ms and set the 99th percentile of per-turn bot
overhead at ~45 ms; after freezing at start-up it was ~22 ms.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_heap() -> bool:
    """Collect once, then freeze everything alive. Idempotent: returns False when already done."""
    global _frozen
    if _frozen:
        return False
    gc.collect()
    gc.freeze()
    _frozen = True
    return True
