"""The tenant console at ``/console/``: dashboard, keys, members, usage and
its CSV, each view scoped to the signed-in person's tenant.
"""
