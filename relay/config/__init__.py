"""Config as code: ``manage.py apply_config relay.yaml`` reads the operator's
YAML file (``loader``, ``read``) and applies it in one transaction
(``apply``), one module per thing it applies: ``groups``, ``channels``,
``tenants``, ``keys``.

May import ``relay.models``, ``relay.providers``, ``accounts`` and ``billing``.
"""
