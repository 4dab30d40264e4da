"""Durable memory: readers, conversations, turns and feedback in Postgres or an embedded SQLite file."""
