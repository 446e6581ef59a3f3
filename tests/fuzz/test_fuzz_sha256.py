"""Fuzz target: the two-lane SHA-256 (``hashing._sha256mb``, decision 0012) against hashlib.

Native code in the hashing path: a bug that skipped or reordered bytes would make signer and
verifier agree on a wrong digest. Property: two messages fed in lockstep through ``update2``, cut
anywhere (empty pieces, mid-block, unequal lengths, single updates in between), give exactly
hashlib's digests, and ``digest()`` does not finalize the state.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelsign.hashing._fastsha import backend

from .conftest import budget

pytestmark = pytest.mark.skipif(backend() is None,
                                reason="two-lane SHA-256 not available on this machine")


@budget(300, 2000)
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000),
       cuts=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000), st.booleans()),
                     max_size=6))
def test_two_lane_sha256_equals_hashlib(a: bytes, b: bytes,
                                        cuts: list[tuple[int, int, bool]]) -> None:
    mod = backend()
    assert mod is not None
    ha, hb = mod.Sha256(), mod.Sha256()
    pa = pb = 0
    for ca, cb, paired in sorted(cuts):
        ca, cb = max(pa, min(ca, len(a))), max(pb, min(cb, len(b)))
        if paired:
            mod.update2(ha, a[pa:ca], hb, memoryview(b)[pb:cb])
        else:
            ha.update(a[pa:ca])
            hb.update(bytearray(b[pb:cb]))
        pa, pb = ca, cb
        assert ha.copy().digest() == hashlib.sha256(a[:pa]).digest()
    mod.update2(ha, a[pa:], hb, b[pb:])
    assert ha.digest() == hashlib.sha256(a).digest()
    assert hb.digest() == hashlib.sha256(b).digest()
    assert ha.digest() == hashlib.sha256(a).digest()  # digest() twice: same answer
