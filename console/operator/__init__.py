"""The operator console at ``/operator/`` (staff only): tenants and balances,
groups and prices, channels and their test, reports and the audit log. Its
writes go through relay/operations/.
"""
