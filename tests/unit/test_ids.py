from __future__ import annotations

from shared.ids import ACCOUNT_ID_LENGTH, is_account_id, new_account_id


def test_account_ids_are_short_opaque_and_unique():
    ids = {new_account_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        assert len(value) == ACCOUNT_ID_LENGTH
        assert is_account_id(value)
        assert value == value.lower()


def test_is_account_id_rejects_other_shapes():
    for value in (None, 42, "", "A" * 26, "a" * 25, "a" * 27, "abcdefghijklmnopqrstuvwxy1", "a/" * 13):
        assert not is_account_id(value)
