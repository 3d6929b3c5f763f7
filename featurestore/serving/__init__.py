"""The serving layer: orchestration between the registry, the gates and the stores (push, materialize)."""

from featurestore.serving.versions import SpecResolver, carry_forward, write_to_live_versions

__all__ = ["SpecResolver", "carry_forward", "write_to_live_versions"]
