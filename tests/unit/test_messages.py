"""Queue messages: versioned JSON with ids only, and clear errors for anything else."""

from __future__ import annotations

import json

import pytest

from shared.errors import BadMessage
from shared.ids import new_account_id
from shared.messages import (
    MESSAGE_TYPES,
    Callback,
    Outbound,
    Reauthorize,
    Renew,
    Subscribe,
    Sync,
    Unsubscribe,
    ignored_fields,
    parse_message,
    read_message,
)

ACCOUNT = new_account_id()


@pytest.mark.parametrize("message", [
    Sync(account=ACCOUNT), Sync(account=ACCOUNT, reason="continue", full=True), Subscribe(account=ACCOUNT),
    Renew(account=ACCOUNT, subscription="s1"), Reauthorize(account=ACCOUNT, subscription="s1"),
    Unsubscribe(account=ACCOUNT), Outbound(account=ACCOUNT, booking="b1", version=3),
    Callback(account=ACCOUNT, row="changes"),
])
def test_every_kind_round_trips(message):
    text = message.to_json()
    assert json.loads(text)["v"] == 1
    assert json.loads(text)["kind"] == message.kind
    assert parse_message(text) == message
    assert parse_message(text.encode()) == message


def test_kinds_map_to_their_queues():
    assert {k: c.queue for k, c in MESSAGE_TYPES.items()} == {
        "sync": "sync", "subscribe": "subscriptions", "renew": "subscriptions", "reauthorize": "subscriptions",
        "unsubscribe": "subscriptions", "purge": "subscriptions", "outbound": "outbound", "callback": "callbacks"}


@pytest.mark.parametrize(("body", "error"), [
    ("not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (f'{{"kind": "sync", "account": "{ACCOUNT}"}}', "unknown message version None"),
    (f'{{"v": 2, "kind": "sync", "account": "{ACCOUNT}"}}', "unknown message version 2"),
    (f'{{"v": 1, "kind": "explode", "account": "{ACCOUNT}"}}', "unknown message kind 'explode'"),
    ('{"v": 1, "kind": "sync"}', "no valid account id"),
    ('{"v": 1, "kind": "sync", "account": "../../etc"}', "no valid account id"),
    (f'{{"v": 1, "kind": "renew", "account": "{ACCOUNT}"}}', "misses 'subscription'"),
    (f'{{"v": 1, "kind": "renew", "account": "{ACCOUNT}", "subscription": ""}}', "invalid 'subscription'"),
    (f'{{"v": 1, "kind": "sync", "account": "{ACCOUNT}", "full": "yes"}}', "invalid 'full'"),
    (f'{{"v": 1, "kind": "sync", "account": "{ACCOUNT}", "reason": "because"}}', "invalid 'reason'"),
    (f'{{"v": 1, "kind": "outbound", "account": "{ACCOUNT}", "booking": "b", "version": true}}', "invalid 'version'"),
    (f'{{"v": 1, "kind": "sync", "account": "{ACCOUNT}", "throttled": -1}}', "invalid 'throttled'"),
    (f'{{"v": 1, "kind": "sync", "account": "{ACCOUNT}", "enqueued_at": "yesterday"}}', "invalid 'enqueued_at'"),
])
def test_bad_messages_are_rejected_with_what_is_wrong(body, error):
    with pytest.raises(BadMessage, match=error.replace("[", r"\[").replace("]", r"\]")):
        parse_message(body)


def test_unknown_fields_are_ignored_and_counted_so_a_rolling_deploy_poisons_nothing(caplog):
    """Review finding 7: a newer release adds an optional field; instances on this code still run it."""
    before = ignored_fields["priority"]
    body = f'{{"v": 1, "kind": "renew", "account": "{ACCOUNT}", "subscription": "s1", "priority": "high"}}'
    read = read_message(body)
    assert read.message == Renew(account=ACCOUNT, subscription="s1")
    assert read.ignored == ("priority",)
    assert ignored_fields["priority"] == before + 1
    assert "ignored unknown fields ['priority']" in caplog.text
    assert "high" not in caplog.text  # names only, never values


def test_the_envelope_travels_but_leaves_equality_and_unset_json_alone():
    plain = Sync(account=ACCOUNT, reason="notification")
    resent = Sync(account=ACCOUNT, reason="notification", enqueued_at=1_790_000_000.5, throttled=2)
    assert plain == resent
    assert hash(plain) == hash(resent)
    assert "enqueued_at" not in json.loads(plain.to_json())
    assert "throttled" not in json.loads(plain.to_json())
    back = parse_message(resent.to_json())
    assert (back.enqueued_at, back.throttled) == (1_790_000_000.5, 2)
