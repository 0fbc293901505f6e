"""Channel health: whether a channel answers (``probe``: a real embeddings
call in its own provider's dialect, for the test button, "test all" and the
periodic probe), channels taken out of rotation and put back (``state``,
``watch``, ``tasks``), and the operator's pin.

May import ``relay.notices``, ``relay.pipeline``'s upstream call and
counting, and everything below them.
"""
