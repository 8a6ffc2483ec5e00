"""YAML with positions: every mapping, list and scalar remembers where it was written.

PyYAML's composer gives nodes with marks; this module turns them into plain Python values
(``LMap``/``LList`` subclasses of dict/list) that keep a Location for themselves, for each key and
for each item, so validation can point at file:line:col. Duplicate keys, which YAML would
silently collapse, are reported.
"""

from __future__ import annotations

from typing import Any

import yaml

from moegen.spec.errors import Location, SpecError


class LMap(dict):
    """A YAML mapping: ``loc`` of the mapping, ``key_loc[k]`` and ``value_loc[k]`` of each entry."""

    loc: Location
    key_loc: dict
    value_loc: dict

    def at(self, key: str) -> Location:
        """Where the value of ``key`` is (or the mapping itself when the key is absent)."""
        return self.value_loc.get(key, self.loc)


class LList(list):
    """A YAML sequence: ``loc`` of the sequence and ``item_loc[i]`` of each item."""

    loc: Location
    item_loc: list


def _loc(path: str, node: yaml.Node) -> Location:
    return Location(path, node.start_mark.line + 1, node.start_mark.column + 1)


def load(text: str, path: str) -> tuple[Any, list[SpecError]]:
    """Parse ``text``; returns (value, errors). A syntax error returns (None, [that error])."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return None, [
            SpecError(
                Location(path, line, col),
                f"YAML syntax: {problem}",
                "fix the indentation or quoting at this position",
            )
        ]
    except yaml.YAMLError as exc:  # e.g. a reader error on invalid characters
        return None, [
            SpecError(Location(path, 1, 1), f"YAML: {exc}", "save the file as UTF-8 text")
        ]
    finally:
        loader.dispose()
    if node is None:
        return None, []
    errors: list[SpecError] = []
    return _convert(node, path, yaml.SafeLoader(""), errors), errors


def _convert(node: yaml.Node, path: str, ctor: yaml.SafeLoader, errors: list[SpecError]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = LMap()
        out.loc, out.key_loc, out.value_loc = _loc(path, node), {}, {}
        for knode, vnode in node.value:
            key = _convert(knode, path, ctor, errors)
            if isinstance(key, (LMap, LList)):
                errors.append(SpecError(_loc(path, knode), "a mapping key must be a plain word"))
                continue
            if key in out:
                errors.append(
                    SpecError(
                        _loc(path, knode),
                        f"duplicate key {key!r} (first at line {out.key_loc[key].line})",
                        "keep one of the two entries",
                    )
                )
                continue
            out[key] = _convert(vnode, path, ctor, errors)
            out.key_loc[key] = _loc(path, knode)
            out.value_loc[key] = _loc(path, vnode)
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LList(_convert(item, path, ctor, errors) for item in node.value)
        seq.loc, seq.item_loc = _loc(path, node), [_loc(path, item) for item in node.value]
        return seq
    try:
        return ctor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        errors.append(SpecError(_loc(path, node), f"bad scalar: {exc}", "quote the value"))
        return None
