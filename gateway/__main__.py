"""``python -m gateway``: read the configuration, then serve the app with uvicorn on $PORT."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.serving import uvicorn_options
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
        log_config=None,
        timeout_graceful_shutdown=1,
        **uvicorn_options(settings),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
