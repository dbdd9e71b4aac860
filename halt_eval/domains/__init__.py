"""The domain registry: every domain is one ``Domain`` record.

Built-in records live in this package (``math``, ``code``, ``bio``, ``med``). Others come from
installed packages through the entry-point group ``halt_eval.domains`` (name = record's import
string), from ``register_domain``, or are named directly as ``"module:ATTRIBUTE"`` wherever a
domain name is accepted (``halt-eval score --domain``, task metadata ``domain``).
"""

from __future__ import annotations

from halt_eval.domains.base import ABSTAIN_HINT, Domain, Source, _resolve

_BUILTIN: dict[str, str] = {
    "math": "halt_eval.domains.math:DOMAIN",
    "code": "halt_eval.domains.code:DOMAIN",
    "bio": "halt_eval.domains.bio:DOMAIN",
    "med": "halt_eval.domains.med:DOMAIN",
}
_REGISTERED: dict[str, Domain] = {}
ENTRY_POINT_GROUP = "halt_eval.domains"

__all__ = ["ABSTAIN_HINT", "Domain", "Source", "get_domain", "register_domain", "domain_names"]


def register_domain(domain: Domain) -> Domain:
    """Make ``domain`` known by its name in this process; returns it."""
    _REGISTERED[domain.name] = domain
    return domain


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def domain_names() -> list[str]:
    """Names of every domain known without importing anything: built-in, registered, plugins."""
    return list(dict.fromkeys([*_BUILTIN, *_REGISTERED, *_entry_points()]))


def get_domain(name: str | Domain) -> Domain:
    """The record of ``name``: a registered or built-in name, a plugin's name, or ``module:ATTR``.

    Raises:
        ValueError: Unknown name, or an import string that does not lead to a ``Domain``.
    """
    if isinstance(name, Domain):
        return name
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name) or (_entry_points().get(name) if ":" not in name else name)
    if target is None:
        raise ValueError(f"unknown domain {name!r}; known: {', '.join(domain_names())} "
                         f"(or 'module:ATTRIBUTE' naming a Domain record)")
    try:
        record = _resolve(target)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"domain {name!r}: cannot import {target!r} ({e})") from e
    if not isinstance(record, Domain):
        raise ValueError(f"domain {name!r}: {target!r} is a {type(record).__name__}, not a Domain")
    return record
