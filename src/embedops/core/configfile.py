"""The one loader of embedops' YAML files (the space config, with its ``migration:`` section, and the
monitoring config), typed at the edge.

Each file's shape is a tree of frozen pydantic dataclasses (``SpacesConfig``, ``MonitoringConfig``):
the same plain types the rest of the code reads. Loading validates the whole tree once; an unknown key,
a key that was removed, a value of the wrong type or a broken rule is refused with the file, the key
(``spaces[1].chunker.max_tokens``) and the fix. Rules checked in a type's ``__post_init__`` raise
``ValueError`` (pydantic's protocol), which the loader turns into a ConfigError at that key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from embedops.errors import ConfigError

# Every config type: unknown keys refused. Fields use pydantic's Strict* types, so that a string is
# not quietly read as a number nor 1 as true.
STRICT = ConfigDict(extra="forbid")

T = TypeVar("T")


def read_config(path: str | Path, schema: type[T], what: str, env_var: str) -> T:
    """The YAML file at ``path`` as a ``schema``; ``what`` names the file, ``env_var`` the setting that chose it."""
    file = Path(path)
    return parse_config_data(_read_yaml(file, what, env_var), schema, f"{what} {file}")


def parse_config_data(data: Any, schema: type[T], source: str) -> T:
    """``data`` (parsed YAML) as a ``schema``, every error naming ``source``, the key and the fix."""
    try:
        return TypeAdapter(schema).validate_python({} if data is None else data)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{source}: {_explain(schema, e)}" for e in exc.errors())) from None


def _read_yaml(file: Path, what: str, env_var: str) -> Any:
    if not file.is_file():
        raise ConfigError(f"{what} {file} does not exist; create it or unset {env_var}")
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {file} is not valid YAML: {exc}") from exc


def _explain(schema: type, error: Any) -> str:
    """One validation error as "<key> <what is wrong>; <the fix>"."""
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind: str = error["type"]
    where = _key_path(loc) or "the file"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        owner, key = _type_at(schema, loc[:-1]), str(loc[-1])
        removed = getattr(owner, "REMOVED_KEYS", {}).get(key)
        if removed:
            return f"{where} was removed: {removed}; delete it"
        known = _field_names(owner)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"{where} is not a known key; {hint}known keys here: {', '.join(known)}"
    if kind in ("missing", "missing_argument", "missing_keyword_only_argument"):
        return f"{where} is required; add it"
    if kind in ("dataclass_type", "dataclass_exact_type", "model_type"):
        known = _field_names(_type_at(schema, loc))
        return f"{where} must be a mapping (keys: {', '.join(known)}), not {error['input']!r}"
    if kind == "value_error":
        rule = str(error["msg"]).removeprefix("Value error, ")
        return f"{where}: {rule}" if loc else rule
    example = _default_at(schema, loc)
    fix = f"; for example {loc[-1]}: {json.dumps(example)}" if example is not None and loc else ""
    wanted = str(error["msg"]).removeprefix("Input should be ").removeprefix("input should be ")
    return f"{where} is {error['input']!r} ({type(error['input']).__name__}); it must be {wanted}{fix}"


def _key_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(tp: Any) -> Any:
    """The config type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _type_at(schema: Any, loc: Sequence[str | int]) -> Any:
    """The type expected at ``loc`` in ``schema`` (None where the path leaves the known types)."""
    tp = _unwrap(schema)
    for part in loc:
        origin = get_origin(tp)
        fields = getattr(tp, "__pydantic_fields__", {})  # a config type: its resolved field types
        if isinstance(part, str) and part in fields:
            tp = _unwrap(fields[part].annotation)
        elif origin in (tuple, list) and isinstance(part, int):
            tp = _unwrap(get_args(tp)[0])
        elif origin in (dict, Mapping) and isinstance(part, str):
            tp = _unwrap(get_args(tp)[1])
        else:
            return None
    return tp


def _field_names(tp: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(tp)] if dataclasses.is_dataclass(tp) else []


def _default_at(schema: Any, loc: Sequence[str | int]) -> Any:
    """The default of the field at ``loc``, to show as an example of a right value."""
    owner = _type_at(schema, loc[:-1])
    if not loc or not dataclasses.is_dataclass(owner):
        return None
    for f in dataclasses.fields(owner):
        if f.name == loc[-1] and f.default is not dataclasses.MISSING and not dataclasses.is_dataclass(f.default):
            return f.default
    return None
