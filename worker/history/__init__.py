"""The worker's side of durable memory: the writer that moves finished turns into the database, and the
retention purge."""
