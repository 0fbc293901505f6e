"""The relay: the Django project (``settings``, ``urls``, ``asgi``, ``wsgi``,
the Celery app in ``celery``) and the ``relay`` app (channels in ``models``),
with one package per part of the architecture; docs/architecture.md draws
the tree and the rule of who imports whom, and tests/test_layout.py holds it.
"""

from relay.celery import app as celery_app

__all__ = ["celery_app"]
