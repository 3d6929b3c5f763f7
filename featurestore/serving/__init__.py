"""The serving layer: orchestration between the registry, the gates and the stores.

``lookup`` (one plan, one sync and one async read path for the SDK and HTTP), ``push``,
``materialize``, ``versions`` (writes that follow version pointers) and ``keys`` (request
keys -> store keys). Import the module you need; this package imports nothing, so the
server's hot path loads only what it uses.
"""

__all__: list[str] = []
