"""The book as searchable knowledge (worker process only).

Reading: ``sources`` reads a docs folder or a Docusaurus site's sitemap (``html_pages`` turns a page back
into Markdown), ``markdown_chunks`` turns documents into chunks, ``sparse`` encodes them for BM25.
Storing: ``store`` opens Qdrant (``qdrant_backends``; ``local_tuning`` speeds up the embedded mode), writes
points laid out by ``point_layout`` and searches them; ``collection_versions`` keeps the versions behind the
alias, ``collection_contents`` reads collections whole, ``collection_status`` says what one looks like.
Building: ``indexing`` runs a build (``document_changes``, ``chunk_embedding`` with ``embed_cache``,
``version_checks``, ``index_progress``); ``standalone_indexing`` runs one without Redis.
Modules are imported directly (nothing is re-exported here) so that chunking does not pull in the Qdrant
client.
"""
