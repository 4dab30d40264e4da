"""Re-indexing the book: the worker's job and the ``tutor-reindex`` command line."""
