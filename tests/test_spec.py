from __future__ import annotations

import pytest

from compress.common.errors import UserError
from compress.strategies.spec import parse_spec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("baseline", ("baseline", {})),
        ("quantize-*", ("quantize-*", {})),
        ("prune-magnitude:sparsity=0.9,epochs=4", ("prune-magnitude", {"sparsity": 0.9, "epochs": 4})),
        ("distill:student=cnn:8,16:32,alpha=0.1", ("distill", {"student": "cnn:8,16:32", "alpha": 0.1})),
        ("x:flag=true,name=abc,none=null", ("x", {"flag": True, "name": "abc", "none": None})),
    ],
)
def test_specs_parse_into_name_and_json_scalars(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "malformed"),
        (":a=1", "malformed"),
        ("distill:", "no parameters"),
        ("distill:alpha", "is not key=value"),
        ("distill:alpha=", "is not key=value"),
        ("distill:alpha=0.1,alpha=0.2", "twice"),
        ("dis till", "malformed"),
    ],
)
def test_malformed_specs_say_how_to_write_them(spec, message):
    with pytest.raises(UserError, match=message):
        parse_spec(spec)
