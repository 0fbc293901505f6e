"""The people's side of the relay: the tenant console (``tenant``), the
operator console (``operator``) and the operator API (``api``), with what
they share (``scoping``, ``formatting``, ``charts``, template tags).

May import ``accounts``, ``billing`` and ``relay``; nothing imports the
consoles but the project's URLs.
"""
