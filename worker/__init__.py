"""The arq worker: turns, the knowledge base and its re-indexing.

One process-wide setting is made here, before anything imports numpy: OpenBLAS would otherwise run every
small matrix-vector product of embedded Qdrant's dense search on a thread per core, and on a small machine
shared with the gateway and Redis those threads wait for each other (measured on 2 busy cores: 17 ms
instead of 0.4 ms for one search over 2,000 x 1,024 vectors). An explicit OPENBLAS_NUM_THREADS wins.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
