# The Hugging Face Space: one container, supervisord runs redis-server, the worker and the gateway.
#
# Two stages. The builder has the deployment spec's system packages (compilers and libpq headers so
# that any dependency without a wheel for this platform can still be built) and builds the pinned
# dependencies into /opt/venv. The final stage gets that venv and only what runs: redis-server, curl
# for the HEALTHCHECK, and the code. `make image-test` builds it, runs it and prints the figures.

# ---------------------------------------------------------------------------------------------------
FROM python:3.11-slim AS builder

# The spec's seed packages. Nothing the service runs links libpq (no Postgres client library is in
# requirements.txt) and nothing runs psql, so they stay here and never reach the final image.
# Versions are not pinned (DL3008): Debian stable only ships security fixes, and a pin breaks the
# build the day the mirror drops the old version; the Python side, which does change, is pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential curl gnupg libpq-dev gcc postgresql-client \
    && rm -rf /var/lib/apt/lists/*

# pip trusts the system CA store (which holds whatever CA the build host adds) rather than its own
# bundled certifi; without it an intercepting egress proxy makes every download fail.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Off by default. An older local stand-in for python:3.11-slim (../shared/tools/make-base-image) had Debian's
# Python 3.11.2, older than a pinned package asks for (soupsieve 4.x: >=3.11.5, a constraint on the patch
# release only); the image test turns this on only when a pin's Requires-Python is not met by the base.
ARG PIP_IGNORE_REQUIRES_PYTHON=0

# Dependencies first, from the pinned set alone, so a code change does not reinstall them. The venv has
# no pip or setuptools of its own (the base image's pip installs into it): nothing needs them at run time.
# Libraries' own test suites (numpy's alone is 17 MB) are never imported by the service: removed. Compiled
# extensions keep only the symbols the loader needs (`strip --strip-unneeded`, build-essential's binutils):
# many wheels ship debug symbols, 62 MB of the venv (uvloop's alone 12 MB). Not the libraries auditwheel
# vendored and relinked (`*.libs/`, or an RPATH): strip breaks those ("ELF load command address/offset not
# page-aligned", numpy's OpenBLAS). Every library is then loaded once, so a broken one fails the build.
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-warn-script-location \
        -r /tmp/requirements.txt \
    && find /opt/venv/lib/python3.11/site-packages -depth -type d -name tests -exec rm -rf {} + \
    && find /opt/venv/lib/python3.11/site-packages -type f -name '*.so*' ! -path '*.libs/*' -exec sh -c \
        'for lib; do readelf -d "$lib" | grep -qE "\((RPATH|RUNPATH)\)" || strip --strip-unneeded "$lib"; done' sh {} + \
    && find /opt/venv/lib/python3.11/site-packages -type f -name '*.so*' -exec /opt/venv/bin/python -c \
        'import ctypes, sys; [ctypes.CDLL(lib) for lib in sys.argv[1:]]' {} +

# ---------------------------------------------------------------------------------------------------
FROM python:3.11-slim

# What runs: redis-server (the queue and event bus, a unix socket under DATA_DIR) and curl (HEALTHCHECK).
# Unpinned for the reason given in the builder stage. `apt-get clean` drops the downloaded .debs and apt's
# binary caches (80 MB) on a base image that, unlike the official one, does not discard them itself.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server curl \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# Spaces run the container as uid 1000; the home directory is where any library cache would go.
RUN useradd --create-home --uid 1000 user

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/user \
    PORT=7860 \
    DATA_DIR=/tmp/physical-ai-tutor \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY --from=builder /opt/venv /opt/venv

# The code last (and owned by root, read-only for the service: it writes only under DATA_DIR).
# Compiled here because uid 1000 cannot write __pycache__ next to it: every start would compile again.
WORKDIR /app
COPY . .
RUN python -m compileall -q /app

USER 1000
EXPOSE 7860
# Liveness only (/ready would mark the container unhealthy while the book is indexed or Redis restarts).
# `|| exit 1`: Docker reserves status 2, which curl can return; every failure becomes plain unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${PORT}/health || exit 1"]
# ROLE picks what runs (shared/entrypoint.py): `all` (default) execs supervisord, which keeps its pid file
# and socket under DATA_DIR (created first); `gateway` or `worker` execs that process alone on REDIS_URL.
# Either way the process exec'd is PID 1, so `docker stop`'s SIGTERM reaches it.
CMD ["python", "-m", "shared.entrypoint"]
