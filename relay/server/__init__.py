"""The web server around the application: gunicorn's configuration, the
uvicorn worker that shares connections evenly between workers, and heap
trimming. Knows nothing of the request path.

May import ``relay.lib``.
"""
