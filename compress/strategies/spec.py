"""Strategy specs: ``NAME`` or ``NAME:key=value[,key=value...]``; NAME may be a wildcard.

Values are JSON scalars where they parse as one (``0.9``, ``4``, ``true``) and
strings otherwise, so ``distill:student=cnn:8,16:32,alpha=0.1`` works: a comma
only separates parameters when a ``key=`` follows it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from compress.common.errors import UserError

#: Named chains, usable anywhere a strategy spec is; the row shows the stages spelled out.
CHAIN_ALIASES = {
    "deep-compression": "prune-magnitude:sparsity=0.8>cluster:clusters=16>quantize-int8",
}

_PARAM_SPLIT = re.compile(r",(?=\s*[A-Za-z_][\w-]*\s*=)")
_NAME = re.compile(r"^[A-Za-z0-9_*?\[\]!-][A-Za-z0-9_*?\[\]!.-]*$")


def parse_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split a spec into its name (or pattern) and its parameters."""
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name or not _NAME.match(name):
        raise UserError(
            f"strategy spec {spec!r} is malformed; write NAME or NAME:key=value[,key=value]"
        )
    params: dict[str, Any] = {}
    if not rest.strip():
        if ":" in text:
            raise UserError(f"strategy spec {spec!r} has ':' but no parameters; drop the ':'")
        return name, params
    for item in _PARAM_SPLIT.split(rest):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not value.strip():
            raise UserError(
                f"strategy spec {spec!r}: {item!r} is not key=value; "
                "write e.g. prune-magnitude:sparsity=0.9,epochs=4"
            )
        if key in params:
            raise UserError(f"strategy spec {spec!r} sets {key!r} twice; keep one")
        params[key] = parse_value(value.strip())
    return name, params
