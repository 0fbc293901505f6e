"""Whether a channel answers: a real embeddings call through one channel, in
its own provider's dialect (``probe``), for the operator's test button.

May import ``relay.pipeline``'s upstream call and everything below it.
"""
