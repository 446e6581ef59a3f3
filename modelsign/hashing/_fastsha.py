"""The two-lane SHA-256 backend (decision 0012), and when the engine may use it.

``modelsign.hashing._sha256mb`` is an optional C extension: SHA-256 on the x86 SHA extensions
that hashes *two* messages at once, their rounds interleaved, at nearly twice one stream's rate
per core. :func:`backend` returns it only when all of these hold, and ``None`` otherwise (the
engine then uses hashlib; the digests are the same either way):

- it was compiled (an optional extension: a platform without a C compiler still installs),
- the CPU has the SHA extensions (checked with CPUID by the module itself),
- ``MODELSIGN_SHA256`` is not ``hashlib`` (the switch to turn it off), and
- a known-answer self-test against hashlib passes in this process: single updates of every
  length around the block boundaries, split updates, and pairs of unequal lengths.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from types import ModuleType

__all__ = ["ENV", "backend", "self_test"]

#: Environment variable: ``hashlib`` turns the two-lane backend off.
ENV = "MODELSIGN_SHA256"


def _data(n: int, seed: int) -> bytes:
    # deterministic, not periodic in 64-byte blocks; SHAKE rather than a Python loop, which
    # took 9 ms of every process's first hash
    return hashlib.shake_128(b"modelsign self-test %d" % seed).digest(n) if n else b""


def self_test(mod: ModuleType) -> bool:
    """Whether ``mod`` computes hashlib's SHA-256 on a set of known answers."""
    lengths = (0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096 + 17)
    for n in lengths:
        d = _data(n, n)
        want = hashlib.sha256(d).digest()
        h = mod.Sha256()
        h.update(d)
        if h.digest() != want:
            return False
        h = mod.Sha256()  # the same bytes in uneven pieces
        for i in range(0, n, 37):
            h.update(d[i:i + 37])
        if h.digest() != want:
            return False
    a_data, b_data = _data(70_000, 1), _data(12_345, 2)
    a, b = mod.Sha256(), mod.Sha256()
    a.update(a_data[:5])  # a starts mid-block
    mod.update2(a, a_data[5:40_005], b, b_data[:3])  # b shorter
    b.update(b_data[3:100])  # both mid-block now
    mod.update2(a, a_data[40_005:40_100], b, b_data[100:])  # b longer: its tail alone
    mod.update2(a, a_data[40_100:], b, b"")
    return bool(a.digest() == hashlib.sha256(a_data).digest()
                and b.digest() == hashlib.sha256(b_data).digest())


@lru_cache(maxsize=1)
def backend() -> ModuleType | None:
    """The two-lane SHA-256 module if it may be used here, else ``None`` (use hashlib)."""
    if os.environ.get(ENV, "").strip().lower() == "hashlib":
        return None
    try:
        from modelsign.hashing import _sha256mb as mod
    except ImportError:
        return None
    if not mod.available or not self_test(mod):
        return None
    return mod
