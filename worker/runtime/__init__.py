"""The arq runtime: the worker's settings, its start-up and shutdown, and its heartbeat."""
