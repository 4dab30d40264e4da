# The Hugging Face Space: one container, supervisord runs redis-server, the worker and the gateway.
FROM python:3.11-slim

# The deployment spec's system packages, plus redis-server (the embedded queue and event bus).
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential curl gnupg libpq-dev gcc postgresql-client redis-server \
    && rm -rf /var/lib/apt/lists/*

# Spaces run the container as uid 1000.
RUN useradd --create-home --uid 1000 user
ENV PORT=7860 \
    DATA_DIR=/tmp/physical-ai-tutor \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first, from the pinned set, so a code change does not reinstall them.
COPY requirements.txt ./
RUN python -m pip install -r requirements.txt

COPY --chown=1000:1000 . .
USER 1000
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/health" || exit 1
# DATA_DIR may be a fresh (ephemeral) path; supervisord keeps its pid file and socket there.
CMD ["sh", "-c", "mkdir -p \"$DATA_DIR\" && exec supervisord -c /app/supervisord.conf"]
