"""Compute targets behind one small interface (submit / status / logs / cancel).

A target kind is a module that declares a ``TargetType`` (its settings' checks,
its backend and its capabilities), named in ``REGISTRY`` and imported only when
a target of that kind is used, so ``ray`` is needed only for Ray targets.
"""

from cumulo.compute.base import (
    REGISTRY,
    Backend,
    Launch,
    NodeBackend,
    TargetState,
    TargetType,
    kinds,
    load_backend,
    register,
    target_type,
)

__all__ = [
    "REGISTRY",
    "Backend",
    "Launch",
    "NodeBackend",
    "TargetState",
    "TargetType",
    "kinds",
    "load_backend",
    "register",
    "target_type",
]
