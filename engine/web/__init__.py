"""The web UI: server-rendered pages for any site, built from its metadata."""

from engine.web.app import create_app

__all__ = ["create_app"]
