"""Exact token counts with tiktoken, offline.

tiktoken downloads its encoding files on first use, which fails on machines without internet. The
genuine files ship inside this package (``bot/data/tiktoken/*.tiktoken.gz``); they are decompressed,
checked against the sha256 that tiktoken itself expects (``tiktoken_ext/openai_public.py``), parsed
(``base64-token rank`` per line) and given to ``tiktoken.Encoding`` with tiktoken's own split pattern and
special tokens (copied below), so counts equal ``tiktoken.get_encoding`` and nothing is fetched.

Model names map to encodings as tiktoken's ``model.py`` does: gpt-4o, gpt-4.1, gpt-5 and the o-series
use ``o200k_base``; gpt-4 and gpt-3.5 use ``cl100k_base``. Any other name (a local model on Ollama or
llama.cpp) falls back to ``o200k_base`` with one logged notice per name.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import tiktoken

log = logging.getLogger(__name__)

# sha256 of the decompressed files, equal to tiktoken's expected_hash values.
EXPECTED_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")
_warned: set[str] = set()

# Split patterns and special tokens, copied verbatim from tiktoken 0.14's
# ``tiktoken_ext/openai_public.py`` (functions ``cl100k_base`` and ``o200k_base``); a unit test checks
# they still equal the installed tiktoken's. Copied rather than calling those functions, because they
# start tiktoken's downloader.
_ENDOFTEXT, _FIM_PREFIX, _FIM_MIDDLE, _FIM_SUFFIX, _ENDOFPROMPT = (
    "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>")
ENCODING_SPECS: dict[str, dict[str, Any]] = {
    "cl100k_base": {
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501 (tiktoken's pattern, verbatim)
        "special_tokens": {_ENDOFTEXT: 100257, _FIM_PREFIX: 100258, _FIM_MIDDLE: 100259, _FIM_SUFFIX: 100260,
                           _ENDOFPROMPT: 100276},
    },
    "o200k_base": {
        "pat_str": "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
        "special_tokens": {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    },
}

# OpenAI cookbook, "How to count tokens with tiktoken" (chat format for gpt-3.5-turbo-0613 and
# later, gpt-4 and gpt-4o): every message costs 3 tokens of framing, a "name" 1 more, and every
# reply is primed with 3 tokens (<|start|>assistant<|message|>).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


class TokenizerDataError(RuntimeError):
    """A shipped encoding file is missing or does not match its sha256 (a broken install)."""


def _load_ranks(name: str) -> dict[bytes, int]:
    resource = resources.files("bot").joinpath(f"data/tiktoken/{name}.tiktoken.gz")
    try:
        raw = gzip.decompress(resource.read_bytes())
    except (FileNotFoundError, OSError) as exc:
        raise TokenizerDataError(f"encoding file for {name} is missing from the package: {exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != EXPECTED_SHA256[name]:
        raise TokenizerDataError(f"encoding file for {name} has sha256 {digest}, expected {EXPECTED_SHA256[name]}")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken ``Encoding`` ``o200k_base`` or ``cl100k_base``, built from the shipped files.

    Raises:
        KeyError: another encoding name.
        TokenizerDataError: the shipped file is missing or corrupt.
    """
    if name not in EXPECTED_SHA256:
        raise KeyError(f"no shipped encoding {name!r}")
    spec = ENCODING_SPECS[name]
    return tiktoken.Encoding(name=name, pat_str=spec["pat_str"], mergeable_ranks=_load_ranks(name),
                             special_tokens=dict(spec["special_tokens"]))


def encoding_name_for_model(model: str) -> str:
    """``o200k_base`` or ``cl100k_base`` for a model name (see module docstring)."""
    m = model.strip().lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" on OpenRouter
    if m.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if m.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    if m not in _warned:
        _warned.add(m)
        log.info("model %r has no known tokenizer; counting tokens with o200k_base", model)
    return "o200k_base"


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The tiktoken encoding for a model name, loaded offline."""
    return get_encoding(encoding_name_for_model(model))


def count_tokens(text: str, model: str = "gpt-4o-mini") -> int:
    """Tokens in ``text`` for ``model`` (special-token text counts as ordinary text)."""
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def count_message_tokens(messages: list[dict[str, Any]], model: str = "gpt-4o-mini") -> int:
    """Prompt tokens of a chat message list, with the per-message overhead of the OpenAI cookbook
    (3 per message, +1 for a ``name``, +3 reply priming). Tool calls count as their JSON."""
    enc = encoding_for_model(model)
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += len(enc.encode(str(message.get("role", "")), disallowed_special=()))
        total += len(enc.encode(_content_text(message.get("content")), disallowed_special=()))
        if message.get("name"):
            total += TOKENS_PER_NAME + len(enc.encode(str(message["name"]), disallowed_special=()))
        if message.get("tool_calls"):
            total += len(enc.encode(json.dumps(message["tool_calls"]), disallowed_special=()))
    return total
