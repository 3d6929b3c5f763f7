"""Feature references: "view:feature", "view:*" or a feature service name -> views and features."""

from __future__ import annotations

from collections.abc import Sequence

from featurestore.errors import RegistryError, did_you_mean
from featurestore.registry.spec import ViewSpec
from featurestore.registry.store import RegistryState

__all__ = ["resolve_features", "ResolvedFeatures"]

ResolvedFeatures = list[tuple[ViewSpec, list[str]]]


def resolve_features(state: RegistryState, features: str | Sequence[str]) -> ResolvedFeatures:
    """Group references by view, keeping first-seen order; raise naming any unknown one.

    ``features`` is a feature service name or a list of ``"view:feature"`` /
    ``"view:*"`` strings (the list may also contain service names).
    """
    refs = [features] if isinstance(features, str) else list(features)
    if not refs:
        raise RegistryError("no features requested")
    views = state.views
    services = state.services
    out: dict[str, list[str]] = {}
    for ref in refs:
        if not isinstance(ref, str):
            raise RegistryError(f"feature reference {ref!r} is not a string")
        if ":" not in ref:
            svc = services.get(ref)
            if svc is None:
                # A bare view name most likely meant all of that view's features.
                hint = f" (did you mean '{ref}:*'?)" if ref in views else did_you_mean(ref, services)
                raise RegistryError(
                    f"unknown feature service {ref!r}{hint} (a feature reference is 'view:feature' or a service name)"
                )
            expanded = svc["features"]
        else:
            expanded = [ref]
        for item in expanded:
            view_name, _, feat = item.partition(":")
            spec = views.get(view_name)
            if spec is None:
                raise RegistryError(
                    f"unknown feature view {view_name!r} in reference {item!r}{did_you_mean(view_name, views)}"
                )
            feats = list(spec.features) if feat == "*" else [feat]
            for f in feats:
                if f not in spec.features:
                    raise RegistryError(
                        f"feature view {view_name!r} has no feature {f!r} (reference {item!r})"
                        f"{did_you_mean(f, spec.features)}"
                    )
                chosen = out.setdefault(view_name, [])
                if f not in chosen:
                    chosen.append(f)
    return [(views[name], feats) for name, feats in out.items()]
