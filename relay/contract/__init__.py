"""OpenAI's wire contract for ``/v1/embeddings``: the request as parsed and
validated (``validation``), the error envelope (``errors``), token counting
(``tokens``), and answer bodies read and rewritten without decoding their
vectors (``passthrough``).

May import ``relay.lib``.
"""
