"""FeatureService: a named, reusable list of features a model consumes."""

from __future__ import annotations

from collections.abc import Sequence

from featurestore.dsl._origin import defined_in
from featurestore.dsl.names import check_identifier
from featurestore.dsl.view import FeatureView, FeatureViewProjection

__all__ = ["FeatureService"]


class FeatureService:
    """``FeatureService("delay_model", features=[weather, planes[["seats"]]])``."""

    def __init__(
        self,
        name: str,
        features: Sequence[FeatureView | FeatureViewProjection],
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.module = defined_in()
        self.name = check_identifier(name, "feature service")
        items = list(features)
        if not items:
            raise ValueError(f"feature service {name!r} needs at least one view or projection")
        for item in items:
            if not isinstance(item, FeatureView | FeatureViewProjection):
                raise ValueError(
                    f"feature service {name!r}: items must be feature views or view[[...]] projections, got {item!r}"
                )
        self.items = items
        self.description = description
        self.tags = dict(tags or {})

    def references(self) -> list[str]:
        """The ``view:feature`` references this service stands for, in order."""
        refs: list[str] = []
        for item in self.items:
            if isinstance(item, FeatureView):
                refs.extend(f"{item.name}:{f.name}" for f in item.features)
            else:
                refs.extend(f"{item.view.name}:{f}" for f in item.features)
        return refs

    def __repr__(self) -> str:
        return f"FeatureService({self.name!r})"
