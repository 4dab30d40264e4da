"""The arq worker: turns, the knowledge base and its re-indexing.

OpenBLAS is kept to one thread, before anything imports numpy: embedded Qdrant's small dense searches ran
many times slower with a thread per core on a small shared machine (README, *Knowledge base*). An explicit
OPENBLAS_NUM_THREADS wins.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
