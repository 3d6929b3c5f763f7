"""The online feature server: ``create_app(settings)`` builds the FastAPI app, ``serve`` runs it."""

from featurestore.server.app import create_app, serve

__all__ = ["create_app", "serve"]
