"""Who may call the relay: tenants, their members, key groups (分组) with
their models, prices and default limits, API keys, and the audit log.

Imports neither ``billing`` nor ``relay``.
"""
