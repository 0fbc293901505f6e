"""The operator API under ``/api/`` (DRF, token or session auth, staff only;
its OpenAPI schema at ``/api/schema/``), writing through relay/operations/
as the operator console does.
"""
