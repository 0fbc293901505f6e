"""Notices sent from Celery tasks, never from the request path: operators
hear of channels taken out of rotation and put back (e-mail and a signed
webhook), tenants' owners of a low balance and of keys about to expire
(e-mail), each in the recipient's own console language.

May import ``relay.models`` and everything below it, billing and accounts.
"""
