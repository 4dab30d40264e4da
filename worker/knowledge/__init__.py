"""The book as searchable knowledge (worker process only).

``markdown_chunks`` turns the Docusaurus docs into chunks, ``sparse`` encodes them for BM25, ``store`` keeps
them in Qdrant and searches them, ``indexing`` builds the collection at start-up. Modules are imported
directly (nothing is re-exported here) so that chunking does not pull in the Qdrant client.
"""
