"""``python -m gateway``: read the configuration, then serve the app with uvicorn on $PORT."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from shared.logs import configure_logging
from shared.settings import load_settings


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.secret_values(), "gateway")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        # Frames over this size close the socket with 1009; smaller ones over MAX_FRAME_BYTES get an error.
        ws_max_size=max(1024 * 1024, settings.max_frame_bytes * 2),
        # Per-message compression costs ~100 KB of zlib state per socket; answers are small text.
        ws_per_message_deflate=False,
        log_config=None,
        timeout_graceful_shutdown=1,
        proxy_headers=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
