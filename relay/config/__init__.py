"""Config as code: ``manage.py apply_config relay.yaml`` reads the operator's
YAML file (``loader``, ``read``) and applies it in one transaction
(``apply``), one module per thing it applies: ``groups``, ``channels``,
``tenants``, ``keys``.

Writes through ``relay.operations`` (the consoles' functions, ``door="config"``),
so the file meets the consoles' guards, price rule and audit events.

May import ``relay.operations``, ``relay.models``, ``relay.providers``,
``accounts`` and ``billing``.
"""
