"""A LazyPattern compiles on first use and answers as the compiled pattern does."""

from __future__ import annotations

import re

from kpmobile.lazyre import LazyPattern


def test_a_lazy_pattern_compiles_on_first_use_and_answers_as_re() -> None:
    source = r"^(?P<key>avg|min)\s*= (?P<value>-?\d+\.\d{3})\s*$"
    lazy, real = LazyPattern(source, re.IGNORECASE), re.compile(source, re.IGNORECASE)
    assert lazy._compiled is None and lazy.pattern == source
    for text in ("avg = 1.500", "AVG = -2.000 ", "max = 1.000", "avg = 1.5", ""):
        got, want = lazy.match(text), real.match(text)
        assert (got and got.groupdict()) == (want and want.groupdict())
        assert bool(lazy.fullmatch(text)) == bool(real.fullmatch(text))
        assert bool(lazy.search(text, 1)) == bool(real.search(text, 1))
    assert lazy.compiled is lazy.compiled  # compiled once
    words = LazyPattern(r"\d+")
    assert [m.group() for m in words.finditer("a1 b22 c333")] == ["1", "22", "333"]
    assert words.sub("#", "a1 b22", count=1) == "a# b22"
