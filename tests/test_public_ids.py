"""Public ids: prefix, length, alphabet, and every base62 character possible at every position."""

from __future__ import annotations

import re
import string

from flask_federation.models.base import new_public_id


def test_public_id_shape() -> None:
    for length in (1, 20, 32):
        public_id = new_public_id("ten_", length)
        assert re.fullmatch(rf"ten_[A-Za-z0-9]{{{length}}}", public_id), public_id


def test_public_id_uses_whole_alphabet_everywhere() -> None:
    # 5,000 ids leave a character unseen at a position with probability about 62 * (61/62)**5000, near zero.
    ids = [new_public_id("", 20) for _ in range(5_000)]
    for position in range(20):
        assert {public_id[position] for public_id in ids} == set(string.ascii_letters + string.digits), position


def test_public_ids_differ() -> None:
    assert len({new_public_id("evt_") for _ in range(10_000)}) == 10_000
