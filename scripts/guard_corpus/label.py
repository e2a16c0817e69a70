"""Propose labels for raw replies from ``generate.py`` and write the corpus (issue 12). Not a test.

Usage (project venv)::

    .venv/bin/python scripts/guard_corpus/label.py --propose /tmp/corpus-raw-*.jsonl > /tmp/proposed.jsonl
    # a person reads every proposed record and writes the labels of the ones to keep into
    # scripts/guard_corpus/review.json: {"<variant>:<n>": {"labels": [...], "notes": "..."}}
    .venv/bin/python scripts/guard_corpus/label.py --write tests/data/guard/corpus.jsonl /tmp/corpus-raw-*.jsonl

The patterns below only *propose*; the corpus holds only records listed in review.json, with the
reviewer's labels. The ``source`` of each record comes from sources.json (by server variant). No expected
cleaned text is written here: the guard's expectations are someone else's work.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

LABELS = ("template_token", "role_prefix", "player_voice", "table_line", "repetition", "prompt_echo",
          "context_echo", "wrapper", "empty", "off_role", "ok")

TEMPLATE = re.compile(r"<\|[a-z_]+\|>|</?s>|\[/?INST\]|<</?SYS>>|<(start|end)_of_turn>|<\|?endoftext\|?>"
                      r"|^\s*(system|user|assistant)\s*$", re.I | re.M)
ROLE = re.compile(r"^\s*[*_]*(DM|GM|Assistant|Dungeon ?Master|Narrator|AI)[*_]*\s*:", re.I)
REVIEW = Path(__file__).with_name("review.json")    # {"variant:n": {"labels": [...], "notes": "..."}}
SOURCES = Path(__file__).with_name("sources.json")  # {"variant": "model via server, date"}


def shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    w = text.split()
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def propose(rec: dict) -> list[str]:
    text = rec["text"]
    out = []
    if not text.strip():
        return ["empty"]
    if TEMPLATE.search(text):
        out.append("template_token")
    if ROLE.match(text):
        out.append("role_prefix")
    names = [re.escape(n) for n in rec["party"] + rec["players"]] + ["Player", "User"]
    pv = re.compile(r"^\s*[*_]*\[?(" + "|".join(names) + r")\b[^\n:\]]{0,40}?(\]|:)", re.I | re.M)
    if pv.search(text):
        out.append("player_voice")
    if re.search(r"^\s*\[Table\]", text, re.M):
        out.append("table_line")
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 15]
    if sentences and max(sentences.count(s) for s in sentences) >= 3:
        out.append("repetition")
    else:
        words = text.split()
        grams = [" ".join(words[i:i + 6]) for i in range(len(words) - 5)]
        if grams and max(grams.count(g) for g in set(grams)) >= 4:
            out.append("repetition")
    if len(shingles(text) & shingles(rec["system_prompt"])) >= 3:
        out.append("prompt_echo")
    acted = set().union(*(shingles(a["text"], 6) for a in rec["actions"]))
    if re.search(r"level \d+ [\w-]+.{0,40}HP \d+/\d+|\(played by \w+", text) or len(shingles(text, 6) & acted) >= 2:
        out.append("context_echo")
    s = text.strip()
    if (s.startswith("```") and s.endswith("```")) or (len(s) > 2 and s[0] == s[-1] and s[0] in "\"'“"):
        out.append("wrapper")
    return out or ["ok"]


def load(paths: list[str]) -> list[dict]:
    recs = []
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            if line.strip():
                recs.append(json.loads(line))
    return recs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--propose", action="store_true")
    ap.add_argument("--write", type=Path)
    ap.add_argument("raw", nargs="+")
    args = ap.parse_args()
    recs = load(args.raw)
    if args.propose:
        for r in recs:
            r["proposed"] = propose(r)
            r.pop("system_prompt", None)
            print(json.dumps(r, ensure_ascii=False))
        return
    review = json.loads(REVIEW.read_text(encoding="utf-8"))
    sources = json.loads(SOURCES.read_text(encoding="utf-8"))
    n = 0
    with args.write.open("w", encoding="utf-8") as out:
        for r in recs:
            key = f"{r['variant']}:{r['n']}"
            if key not in review:  # only what a person read and labelled goes in
                continue
            entry = review[key]
            bad = [x for x in entry["labels"] if x not in LABELS]
            if bad or not entry["labels"]:
                sys.exit(f"{key}: bad labels {entry['labels']}")
            n += 1
            rec = {"id": f"{r['variant']}-{r['n']:03d}", "source": sources[r["variant"]],
                   "prompt_party": r["party"], "prompt_players": r["players"],
                   "text": r["text"], "labels": entry["labels"]}
            if entry.get("notes"):
                rec["notes"] = entry["notes"]
            rec["params"] = {k: r[k] for k in ("temperature", "seed", "max_tokens", "ignore_eos",
                                               "finish_reason", "history_turns")}
            rec["actions"] = r["actions"]
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {n} records to {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
