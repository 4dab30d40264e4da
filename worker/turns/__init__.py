"""A chat turn: retrieval, the answer (Cohere's or the offline one), conversation memory and its events."""
