"""A small HTTP client for applications: ``FeatureClient(url).get_online_features(...)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from featurestore.errors import (
    FeatureStoreError,
    ForbiddenError,
    InvalidRequestError,
    MalformedRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RequestError,
    StoreUnavailableError,
    redact,
)
from featurestore.serving.lookup import OnlineFeatures

__all__ = ["FeatureClient"]

# What the server's 4xx answers mean, as the exceptions the SDK raises for the same mistakes.
_ERRORS: dict[int, type[RequestError]] = {
    400: MalformedRequestError,
    403: ForbiddenError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
}


class FeatureClient:
    """Talks to ``featurestore serve``; keeps one HTTP connection pool.

    ``FeatureClient("http://127.0.0.1:6566").get_online_features(["driver_stats:f00"], {"driver_id": [1]})``
    """

    def __init__(self, url: str, *, timeout: float = 2.0, headers: dict[str, str] | None = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        import httpx

        try:
            resp = self._http.post(path, content=orjson.dumps(payload), headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(redact(f"feature server {self.url} unreachable: {exc}")) from None
        if resp.status_code == 503:
            raise StoreUnavailableError(_detail(resp))
        if resp.status_code >= 400:
            raise _ERRORS.get(resp.status_code, RequestError)(_detail(resp))
        return orjson.loads(resp.content)

    def get_online_features(
        self,
        features: str | Sequence[str],
        entities: dict[str, Sequence[Any]],
        *,
        full_feature_names: bool = False,
    ) -> OnlineFeatures:
        """Latest values, statuses and event times; ``features`` is a service name or ``view:feature`` list."""
        payload: dict[str, Any] = {
            "entities": {k: list(v) for k, v in entities.items()},
            "full_feature_names": full_feature_names,
        }
        if isinstance(features, str) and ":" not in features:
            payload["feature_service"] = features
        else:
            payload["features"] = [features] if isinstance(features, str) else list(features)
        return OnlineFeatures(self._post("/get-online-features", payload))

    def get_rows(self, view: str, entities: dict[str, Sequence[Any]]) -> dict[str, Any]:
        """Every feature of one view per entity: ``{"columns": [...], "statuses": [...], "rows": [...]}``."""
        return dict(self._post("/rows", {"view": view, "entities": {k: list(v) for k, v in entities.items()}}))

    def push(self, view: str, rows: Any, *, to_offline: bool = False, to_online: bool = True) -> dict[str, Any]:
        """Write rows through the view's push gate, online and/or (``to_offline``) offline; returns the push result."""
        body = {"view": view, "rows": rows, "to_offline": to_offline, "to_online": to_online}
        return dict(self._post("/push", body))

    def ready(self) -> bool:
        try:
            return self._http.get("/ready").status_code == 200
        except Exception:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FeatureClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _detail(resp: Any) -> str:
    try:
        return str(orjson.loads(resp.content).get("detail"))
    except (orjson.JSONDecodeError, AttributeError):
        raise FeatureStoreError(f"feature server answered {resp.status_code}: {resp.text[:200]}") from None
