"""The ``POST /v1/embeddings`` request path: authenticate, validate, model
access, limits and hold in one Redis step (``gate``), forward with failover
(``upstream``, ``routing``), stream big answers, settle in one Redis step.
``embed.embed`` runs it start to finish.

May import ``relay.limits``, ``relay.catalog``, ``relay.providers``,
``relay.connections``, ``relay.contract``, ``relay.lib``, and ``billing``'s
live balance, pricing and usage events. Never the consoles.
"""
