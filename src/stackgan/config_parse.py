"""Typed construction of nested frozen dataclasses from plain data (YAML, JSON, ``--set``).

An unknown key or a value of the wrong type is a :class:`ConfigError` that names the key; values
are converted only where that is lossless. Used by :mod:`stackgan.config`.
"""

from __future__ import annotations

import math
import reprlib
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from stackgan.errors import StackGANError


class ConfigError(StackGANError, ValueError):
    """A configuration that cannot be used: unknown key, wrong type or inconsistent values."""


T = TypeVar("T")

# A config is a few hundred nodes; these bound what a crafted file can cost before it is built
# (anchors and aliases expanded: "billion laughs"; nesting: PyYAML composes recursively).
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 32
MAX_INT = (1 << 63) - 1  # every integer option fits an int64 (seeds, sizes, counts)
_REPR_CHARS = 80  # of a bad value, in an error message


def _short(value: Any) -> str:
    """``repr(value)`` cut to a line: an error never prints a huge value."""
    text = reprlib.repr(value)
    return text if len(text) <= _REPR_CHARS else text[: _REPR_CHARS - 3] + "..."


def _flow_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text`` (quotes ignored: an over-estimate only
    for brackets inside strings, and no config nests 32 deep). PyYAML's scanner looks ahead
    over every open flow collection, so 20,000 ``[`` cost seconds before its first event."""
    depth = top = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}" and depth:
            depth -= 1
    return top


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` of ``text`` after a streaming pass over its events that bounds its
    size, nesting depth and the nodes its aliases expand to (each alias counts as the nodes of
    its anchor), so a small file cannot expand to gigabytes or exhaust the stack."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_YAML_BYTES} bytes; not a config")
    if _flow_depth(text) > MAX_YAML_DEPTH:  # PyYAML scans nested [ { in quadratic time
        raise ConfigError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels")
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []
    total = 0
    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.AliasEvent):
                total += sizes.get(ev.anchor or "", 1)
            elif isinstance(ev, yaml.ScalarEvent):
                total += 1
                if ev.anchor:
                    sizes[ev.anchor] = 1
            elif isinstance(ev, yaml.CollectionStartEvent):
                total += 1
                open_nodes.append((ev.anchor, total))
                if len(open_nodes) > MAX_YAML_DEPTH:
                    raise ConfigError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels")
            elif isinstance(ev, yaml.CollectionEndEvent):
                anchor, start = open_nodes.pop()
                if anchor:
                    sizes[anchor] = total - start + 1
            if total > MAX_YAML_NODES:
                raise ConfigError(
                    f"{where}: expands to more than {MAX_YAML_NODES} values (aliases of "
                    "aliases?); not a config"
                )
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {_short(str(exc))}") from exc


def to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only where it is lossless."""
    origin = get_origin(tp)
    if origin is Literal:
        if value is False and "off" in get_args(tp):  # YAML 1.1 reads a bare `off` as false
            value = "off"
        if value not in get_args(tp):
            raise ConfigError(f"{key}: {_short(value)} is not one of {list(get_args(tp))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {_short(value)} does not match {tp}")
    if origin is tuple and get_args(tp)[1:] == (Ellipsis,):  # tuple[X, ...]: any length
        if isinstance(value, str):  # `--set train.metrics=fid,kid`
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {_short(value)}")
        item = get_args(tp)[0]
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {_short(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {_short(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_short(value)}")
        if abs(value) > MAX_INT:
            raise ConfigError(f"{key}: {_short(value)} is out of range")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {_short(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_short(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer past 1e308
            number = math.inf
        if not math.isfinite(number):  # .inf / .nan / 1e400 pass every "> 0" check
            raise ConfigError(f"{key}: expected a finite number, got {_short(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_short(value)}")
        return value
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {_short(value)}")
    raise ConfigError(f"{key}: unsupported field type {tp}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {_short(data)}")
    assert is_dataclass(cls)
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s} (in {where}; valid keys: "
            f"{', '.join(sorted(known))})"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        if is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(value, tp, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(str(exc)) from exc


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"optim.g_lr=1e-4"`` -> (["optim", "g_lr"], 1e-4); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {_short(item)} must look like key.sub=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {_short(item)} has an empty key")
    value = safe_yaml(raw, f"override {key}") if raw.strip() else ""
    return key.split("."), value
