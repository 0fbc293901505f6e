"""Real clients of the relay (the OpenAI SDKs, langchain, llama-index) and
the channels they are tested through: one per provider kind, at that kind's
dialect of the fake upstream. The Node SDK's package is in node/."""
