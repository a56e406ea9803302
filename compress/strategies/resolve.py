"""Strategies from spec text: one registered strategy, every match of a wildcard, or a chain.

Above both the registry (``base``) and ``chain``, because a spec with ``>`` is a chain of
registered strategies.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from compress.strategies.base import Strategy, registry, select
from compress.strategies.spec import CHAIN_ALIASES, parse_spec

if TYPE_CHECKING:
    pass


def strategies_from_spec(spec: str, overrides: dict[str, Any] | None = None) -> list[Strategy]:
    """Instances for a spec; a wildcard gives one per matching strategy, each validated.

    ``overrides`` (run settings such as ``epochs``) apply to every strategy that has a
    parameter of that name, unless the spec sets it explicitly.
    """
    alias = spec.strip() if spec.strip() in CHAIN_ALIASES else None
    spec = CHAIN_ALIASES.get(spec.strip(), spec)
    if ">" in spec:
        from compress.strategies.chain import Chain  # the chain module builds on this one

        return [Chain.from_spec(spec, overrides, alias=alias)]
    pattern, params = parse_spec(spec)
    return [cls.from_params(**_with_overrides(cls, params, overrides)) for cls in select(pattern)]


def _with_overrides(cls: type[Strategy], params: dict[str, Any],
                    overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Run settings for the parameters the class owns; a parameter whose default is None is
    inherited from a paired technique instead, so a run setting never splits a control from it."""
    signature = inspect.signature(cls.__init__).parameters
    shared = {k: v for k, v in (overrides or {}).items()
              if k in signature and signature[k].default is not None}
    return {**shared, **params}


def strategy_from_name(name: str, overrides: dict[str, Any] | None = None) -> Strategy:
    """One registered strategy with its defaults (and run overrides)."""
    cls = registry()[name]
    return cls.from_params(**_with_overrides(cls, {}, overrides))
