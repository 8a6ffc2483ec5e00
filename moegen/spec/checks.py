"""Small validation helpers for the spec loader: each appends positioned errors and returns
whether the value is usable."""

from __future__ import annotations

import difflib
import keyword
import re
from typing import Any

from moegen.spec.errors import Location, SpecError
from moegen.spec.located import LList, LMap
from moegen.spec.model import CONFIG_KEYS, NAME_RE

# ---------------------------------------------------------------------------------------------
# small validation helpers: each appends to `errors` and returns whether the value is usable


def _suggest(word: str, allowed) -> str:
    close = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _not_a_string(value: Any) -> str:
    """' (YAML reads it as an integer, not a string)' for a non-string key; '' for a string.

    Unquoted 16, true, null or 1.5 are not words to YAML, so a key written that way never
    matches a name even when it looks like one.
    """
    if isinstance(value, str):
        return ""
    if value is None:
        kind = "null"
    elif isinstance(value, (bool, int)):
        kind = type_name(value)
    else:  # float, date, timestamp
        kind = f"a {type(value).__name__}"
    return f" (YAML reads it as {kind}, not a string)"


def _quote_hint(value: Any) -> str:
    """How to write a non-string key as a name: quoted, starting with a letter (e.g. 'x16')."""
    word = re.sub(r"[^a-z0-9_]", "_", "null" if value is None else str(value).lower())
    if not word[:1].isalpha():
        word = f"x{word}"
    return f"quote it, e.g. '{word}': names are strings of lowercase letters, digits and '_'"


def check_keys(
    m: LMap,
    allowed: tuple[str, ...],
    what: str,
    errors: list[SpecError],
    required: tuple[str, ...] = (),
) -> None:
    """Report each key of `m` outside `allowed` (did-you-mean included) and each missing one of
    `required`, each at its own position."""
    for key in m:
        if key not in allowed:
            errors.append(
                SpecError(
                    m.key_loc[key],
                    f"unknown key {key!r}{_not_a_string(key)} in {what}; "
                    f"allowed keys: {', '.join(allowed)}",
                    f"{_suggest(key, allowed)}remove or rename the key"
                    + ("" if isinstance(key, str) else " (keys are strings: quote it)"),
                )
            )
    for key in required:
        if key not in m:
            errors.append(
                SpecError(
                    m.loc,
                    f"{what} is missing the required key {key!r}",
                    f"add `{key}:`",
                )
            )


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return type(value).__name__


def expect_map(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if isinstance(value, LMap):
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} must be a mapping, not {type_name(value)}",
            "write `key: value` lines",
        )
    )
    return False


def expect_int(
    value: Any, loc: Location, what: str, errors: list[SpecError], minimum: int = 1
) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(
            SpecError(
                loc,
                f"{what} must be an integer, not {type_name(value)} ({value!r})",
                f"write a whole number >= {minimum}",
            )
        )
        return False
    if value < minimum:
        errors.append(
            SpecError(
                loc,
                f"{what} must be >= {minimum}, got {value}",
                f"use a value >= {minimum}",
            )
        )
        return False
    return True


def expect_str(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if isinstance(value, str) and value:
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} must be a non-empty string, not {type_name(value)}",
            "write a word",
        )
    )
    return False


def expect_bool(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if isinstance(value, bool):
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} must be true or false, not {type_name(value)} ({value!r})",
            "write true or false",
        )
    )
    return False


def expect_choice(value: Any, choices, loc: Location, what: str, errors: list[SpecError]) -> bool:
    if (
        not isinstance(value, (LMap, LList))
        and value in choices
        and type(value) is type(next(iter(choices)))
    ):
        return True
    errors.append(
        SpecError(
            loc,
            f"{what} {value!r} is not one of: {', '.join(map(str, choices))}",
            f"{_suggest(value, choices)}use one of the listed values",
        )
    )
    return False


def check_name(value: Any, loc: Location, what: str, errors: list[SpecError]) -> bool:
    """A name that becomes part of a Python identifier and a file name."""
    if isinstance(value, str) and NAME_RE.match(value) and not keyword.iskeyword(value):
        return True
    if not isinstance(value, str):
        errors.append(
            SpecError(
                loc,
                f"{what} name {value!r}{_not_a_string(value)}: a name must be a string",
                _quote_hint(value),
            )
        )
        return False
    errors.append(
        SpecError(
            loc,
            f"{what} {value!r} is not a valid name (it becomes a file and module name)",
            "use lowercase letters, digits and '_', starting with a letter; no '/', '.' or '-'",
        )
    )
    return False


def check_configs(value: Any, loc: Location, errors: list[SpecError]) -> bool:
    """`configs:`: a non-empty list of tile regimes, each with every CONFIG_KEYS int >= 1,
    ascending by `tokens`."""
    if not isinstance(value, LList) or not value:
        errors.append(
            SpecError(
                loc,
                f"configs must be a non-empty list of tile regimes, not {type_name(value)}",
                "write configs: [{tokens: 64, m: 16, n: 64, k: 128, warps: 4, stages: 4}]",
            )
        )
        return False
    n0 = len(errors)
    last = 0
    for i, entry in enumerate(value):
        if not expect_map(entry, value.item_loc[i], "a configs entry", errors):
            continue
        check_keys(entry, CONFIG_KEYS, "a configs entry", errors, required=CONFIG_KEYS)
        for k in CONFIG_KEYS:
            if k in entry and expect_int(entry[k], entry.at(k), f"configs {k}", errors):
                if entry[k] < 1:
                    errors.append(
                        SpecError(entry.at(k), f"configs {k}={entry[k]} must be >= 1", "")
                    )
        tokens = entry.get("tokens")
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            if tokens <= last:
                errors.append(
                    SpecError(
                        entry.at("tokens"),
                        f"configs tokens={tokens} must be larger than the previous entry's {last}",
                        "list the regimes by ascending token count",
                    )
                )
            last = max(last, tokens)
    return len(errors) == n0
