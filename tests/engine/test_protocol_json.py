"""The monitor protocol's JSON (``protocol.dumps``/``loads``, the json module's C parts without the
json module): byte for byte what ``json.dumps(obj, separators=(",", ":"))`` writes, and what
``json.loads`` reads, errors included."""
from __future__ import annotations

import json
import math

import pytest

from dockyard.engine import protocol

SAMPLES = [
    {"op": "exec", "ref": "web", "cmd": ["sh", "-c", 'echo "hi" é\n\t\\'], "env": [], "workdir": None,
     "user": None, "privileged": False, "detach": True},
    {"event": "exit", "code": 137}, {"nested": {"a": [1, 2.5, {"b": None}], "c": "\u2603"}, 3: "int key"},
    "a string", 0, -1, 1.25, None, True, [], {}, [[[]]], "\x00\x1f",
]


@pytest.mark.parametrize("obj", SAMPLES, ids=range(len(SAMPLES)))
def test_same_text_as_json(obj: object) -> None:
    text = protocol.dumps(obj)
    assert text == json.dumps(obj, separators=(",", ":"))
    assert protocol.loads(text.encode()) == json.loads(text)
    assert protocol.loads(f" \n{text}\t ") == json.loads(text)


def test_non_finite_floats_and_frames() -> None:
    assert protocol.dumps([math.inf, -math.inf]) == "[Infinity,-Infinity]"
    assert math.isnan(protocol.loads(b"NaN"))
    kind, payload = protocol.FrameReader().feed(protocol.control({"ok": True}))[0]
    assert (kind, protocol.loads(payload)) == (protocol.CONTROL, {"ok": True})


@pytest.mark.parametrize("bad", [b"", b"{", b'{"a":1} x', b"\xff", b"[1,]"])
def test_errors_are_json_errors(bad: bytes) -> None:
    with pytest.raises(ValueError) as got:
        protocol.loads(bad)
    with pytest.raises(ValueError) as expected:
        json.loads(bad)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)


def test_unserialisable_values_fail_as_in_json() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        protocol.dumps({"x": object()})
