"""The book as searchable knowledge (worker process only).

``sources`` reads a docs folder or a Docusaurus site's sitemap (``html_pages`` turns a page back into
Markdown), ``markdown_chunks`` turns documents into chunks, ``sparse`` encodes them for BM25,
``embed_cache`` remembers dense embeddings, ``store`` keeps versions in Qdrant behind an alias and searches
them (``local_tuning`` speeds up the embedded mode), and ``indexing`` builds, checks and switches a version.
Modules are imported directly (nothing is re-exported here) so that chunking does not pull in the Qdrant
client.
"""
