"""Compute targets behind one small interface (submit / status / logs / cancel).

Backends are plugins named in ``REGISTRY`` and imported only when a target of
that kind is used, so ``ray`` is needed only for Ray targets.
"""

from cumulo.compute.base import REGISTRY, Backend, Launch, TargetState, load_backend

__all__ = ["REGISTRY", "Backend", "Launch", "TargetState", "load_backend"]
