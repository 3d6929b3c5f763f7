"""The read-only web UI served at /ui: registry, freshness, data quality, training sets and a lookup playground."""

from featurestore.server.ui.routes import STATIC_DIR, UI_ASSETS, mount_ui

__all__ = ["mount_ui", "STATIC_DIR", "UI_ASSETS"]
