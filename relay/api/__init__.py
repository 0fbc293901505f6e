"""The HTTP edge of the API: the lean ASGI handler for API paths, the
``POST /v1/embeddings`` route straight from ASGI, the other ``/v1/`` views,
the legacy billing endpoints, health checks and metrics.

May import ``relay.pipeline`` and everything below it, and ``relay.server``'s
connection balancing. Never the consoles.
"""
