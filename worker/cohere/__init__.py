"""Cohere through its async SDK: the clients, embeddings, rerank and the streamed answer, with retries and
the limits shared by all workers."""
