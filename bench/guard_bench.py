"""Benchmark of the output guard (issue 12): time to check a 700-token narration (``python -m bench
--only guard``)."""

from __future__ import annotations

import statistics
import time
from typing import Any


def bench_guard(runs: int = 300) -> dict[str, Any]:
    """Median and p99 (ms) of ``guard.guard`` on a clean ~700-token narration and on one that
    trips several rules, with a five-member party and the real DM rules text."""
    from bot.game.context import system_prompt
    from bot.game.guard import GuardContext, guard
    from bot.llm.tokens import count_tokens
    from bot.models import Campaign, GuildConfig

    campaign = Campaign(1, 1, 1, "The Sunken Crypt", "A drowned temple", "grim", "active", 1, 0.0)
    config = GuildConfig(1, "gpt-4o-mini", 0.8, 700, "batch", 6.0, (), (), 0, 0, "classic", "teen")
    rules = system_prompt(campaign, config, None)
    ctx = GuardContext(names=("Aria", "ann", "Borin Stonefist", "bob", "Cyra", "cy", "Dane", "dee", "Eryn", "eve"),
                       rules_text=rules, secrets=("sk-live-0123456789abcdef", "MTA0NTgx.GaBcDe.abcdef"))
    sentence = ("The torchlight gutters across wet stone as the ogre lumbers forward, its club scraping the "
                "flagstones, while somewhere behind the altar water drips into a black pool. ")
    clean = ""
    i = 0
    while count_tokens(clean, "gpt-4o-mini") < 700:
        clean += sentence.replace("ogre", f"ogre number {i}")
        i += 1
    dirty = "DM: " + clean + "\nAria: I attack!<|im_end|>"
    out: dict[str, Any] = {"tokens": count_tokens(clean, "gpt-4o-mini")}
    for label, text in (("clean", clean), ("dirty", dirty)):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            guard(text, ctx)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out[f"{label}_ms_median"] = round(statistics.median(times), 3)
        out[f"{label}_ms_p99"] = round(times[int(0.99 * len(times))], 3)
    return out
