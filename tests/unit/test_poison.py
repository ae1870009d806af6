"""Poisoned messages (docs/architecture.md, "Poison"): held in the poison table with their journal history,
the account degraded for ``poison:{kind}`` only when live, and an operator's replay or discard clearing it.

The host's side of it: "Azure Queue storage trigger for Azure Functions", poison messages
(https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from shared.accounts.model import Status
from shared.accounts.repository import AccountRepository
from shared.accounts.status import add_degraded_reason, degraded_reasons, set_status
from shared.dispatch import dispatch
from shared.errors import TransientGraphError
from shared.ids import new_account_id
from shared.messages import Outbound, Subscribe, Sync
from shared.openapi import SCHEMAS
from shared.poison.api import discard_poison, list_poison, replay_poison
from shared.poison.hold import PoisonedMessage, hold
from shared.store.limits import MAX_STRING_BYTES, check_row
from shared.store.ports import OUTBOX, POISON
from tests.unit.test_connect import World


@pytest.fixture
def world() -> World:
    return World()


async def active_account(world: World, ref: str = "saas-user-1", username: str = "ada@contoso.test") -> str:
    account, token = await world.sign_in(ref, username)
    assert (await world.confirm(account, token, ref)).status == 200
    return account


async def fail_five_times(world: World, message) -> None:
    """Five deliveries through the real dispatch, each failing as a 500 from Graph would."""
    async def failing(_message) -> None:
        raise TransientGraphError("Graph answered 500 generalException", status=500, code="generalException")

    for delivery in range(1, 6):
        world.clock.advance(30)
        with pytest.raises(TransientGraphError):
            await dispatch(message.to_json(), failing, world.services, dequeue_count=delivery)


def poisoned(message, message_id: str = "m-1", queue: str | None = None, **kw) -> PoisonedMessage:
    body = message if isinstance(message, bytes) else message.to_json().encode()
    return PoisonedMessage(queue or message.queue, message_id, body, kw.pop("deliveries", 1), 1_790_000_500.0,
                           1_791_000_000.0)


async def status_of(world: World, account: str):
    found = await AccountRepository(world.services.tables).get(account)
    assert found is not None
    return found


def fits(schema_name: str, body: bytes) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": SCHEMAS}}
    jsonschema.validate(json.loads(body), schema, cls=jsonschema.Draft202012Validator)


# --- holding ------------------------------------------------------------------------------------------

async def test_a_message_that_failed_five_times_is_held_with_its_attempts_and_degrades_its_account(world):
    account = await active_account(world)
    message = Sync(account=account, reason="notification")
    await fail_five_times(world, message)
    row = await hold(world.services, poisoned(message))
    assert row.partition == "sync"
    assert row.row == "m-1"
    assert row.get("state") == "held"
    assert json.loads(row.get("payload")) == json.loads(message.to_json())
    assert (row.get("kind"), row.get("account"), row.get("reason")) == ("sync", account, "poison:sync")
    assert row.get("last_error_class") == "TransientGraphError"
    assert "generalException" in row.get("last_error_detail")
    assert row.get("dequeue_count") == 5
    attempts = json.loads(row.get("attempts"))
    assert [a["dequeue_count"] for a in attempts] == [5, 4, 3, 2, 1]
    assert {a["http_status"] for a in attempts} == {500}
    assert row.get("degraded") is True
    saved = await status_of(world, account)
    assert saved.status is Status.DEGRADED
    assert degraded_reasons(saved) == {"poison:sync"}
    entries = [e for e in await world.services.journal.recent(account) if e.operation == "poison"]
    assert len(entries) == 1
    assert entries[0].outcome == "error"
    assert entries[0].stage == "sync"


async def test_the_same_poison_message_delivered_twice_writes_one_row_and_one_journal_entry(world):
    account = await active_account(world)
    message = Sync(account=account)
    await hold(world.services, poisoned(message))
    outbox_before = len(world.services.tables.rows(OUTBOX))
    again = await hold(world.services, poisoned(message, deliveries=2))
    assert again.get("journaled") is True
    assert len([r for r in world.services.tables.rows(POISON) if r.partition == "sync"]) == 1
    assert len([e for e in await world.services.journal.recent(account) if e.operation == "poison"]) == 1
    assert len(world.services.tables.rows(OUTBOX)) == outbox_before


@pytest.mark.parametrize("status", [Status.NEEDS_RECONNECT, Status.DISCONNECTED, Status.UNSUPPORTED])
async def test_a_degraded_reason_never_overrides_a_status_that_is_not_live(world, status):
    account = await active_account(world)
    await set_status(world.services, account, status, "test")
    row = await hold(world.services, poisoned(Sync(account=account)))
    assert row.get("state") == "held"
    assert row.get("degraded") is False
    assert (await status_of(world, account)).status is status


async def test_a_message_for_an_unknown_account_is_held_and_degrades_nothing(world):
    row = await hold(world.services, poisoned(Sync(account=new_account_id())))
    assert row.get("state") == "held"
    assert row.get("degraded") is False


async def test_a_malformed_payload_is_kept_and_cannot_be_replayed_only_discarded(world):
    row = await hold(world.services, poisoned(b'{"v": 1, "kind": "sink"', queue="sync"))
    assert row.get("payload") == '{"v": 1, "kind": "sink"'
    assert row.get("kind") is None
    assert row.get("account") is None
    assert "not valid JSON" in row.get("parse_error")
    assert row.get("last_error_class") == "BadMessage"
    (entry,) = [e for e in await world.services.journal.recent(None) if e.operation == "poison"]
    assert entry.stage == "unreadable"
    refused = await replay_poison(world.services, "sync", "m-1")
    assert refused.status == 409
    assert json.loads(refused.body)["error"]["code"] == "poison_not_replayable"
    assert world.services.queue.all_bodies("sync") == []
    discarded = await discard_poison(world.services, "sync", "m-1")
    assert discarded.status == 200
    assert json.loads(discarded.body)["state"] == "discarded"


async def test_secrets_in_a_payload_are_redacted_and_a_huge_one_is_cut_to_fit_a_string_property(world):
    secret = "1.AQ" + "x" * 40
    body = json.dumps({"v": 1, "kind": "sync", "refresh_token": secret, "pad": "\U0001F600" * 40_000}).encode()
    row = await hold(world.services, poisoned(body, queue="sync"))
    assert secret not in json.dumps(dict(row.data))
    assert row.get("payload_truncated") is True
    assert row.get("payload_redacted") is True
    assert len(row.get("payload").encode("utf-16-le")) <= MAX_STRING_BYTES
    check_row(row)


@pytest.mark.parametrize(("message", "reason"), [
    (lambda a: Subscribe(account=a), "poison:subscribe"),
    (lambda a: Outbound(account=a, booking="b-1", version=2), "poison:outbound"),
])
async def test_the_reason_is_the_message_kind(world, message, reason):
    account = await active_account(world)
    row = await hold(world.services, poisoned(message(account)))
    assert row.get("reason") == reason
    assert degraded_reasons(await status_of(world, account)) == {reason}


# --- replay and discard -------------------------------------------------------------------------------

async def test_replay_sends_the_payload_back_clears_the_reason_and_refuses_a_second_time(world):
    account = await active_account(world)
    world.services.queue.clear("sync")  # confirm's full sync
    message = Sync(account=account, reason="timer", enqueued_at=1_789_999_000.0, throttled=100)
    await hold(world.services, poisoned(message))
    world.clock.advance(60)  # the journal orders entries by time
    replayed = await replay_poison(world.services, "sync", "m-1")
    assert replayed.status == 200, replayed.text
    body = json.loads(replayed.body)
    fits("PoisonMessage", replayed.body)
    assert body["state"] == "replayed"
    assert body["replayed_at"].endswith("Z")
    (sent,) = world.services.queue.all_bodies("sync")
    assert json.loads(sent) == {"v": 1, "kind": "sync", "account": account, "reason": "timer", "full": False,
                                "enqueued_at": 1_789_999_000.0}  # throttling budget reset, first enqueue kept
    assert (await status_of(world, account)).status is Status.ACTIVE
    again = await replay_poison(world.services, "sync", "m-1")
    assert again.status == 409
    assert json.loads(again.body)["error"]["code"] == "poison_already_replayed"
    fits("Error", again.body)
    assert len(world.services.queue.all_bodies("sync")) == 1
    discard = await discard_poison(world.services, "sync", "m-1")
    assert json.loads(discard.body)["error"]["code"] == "poison_already_replayed"
    stages = [e.stage for e in await world.services.journal.recent(account) if e.operation == "poison"]
    assert stages == ["replayed", "sync"]


async def test_the_reason_stays_while_another_held_row_of_that_kind_remains(world):
    account = await active_account(world)
    await hold(world.services, poisoned(Sync(account=account), "m-1"))
    await hold(world.services, poisoned(Sync(account=account, reason="timer"), "m-2"))
    await hold(world.services, poisoned(Subscribe(account=account), "m-3"))
    assert (await discard_poison(world.services, "sync", "m-1")).status == 200
    assert degraded_reasons(await status_of(world, account)) == {"poison:sync", "poison:subscribe"}
    assert (await replay_poison(world.services, "sync", "m-2")).status == 200
    assert degraded_reasons(await status_of(world, account)) == {"poison:subscribe"}
    assert (await discard_poison(world.services, "subscriptions", "m-3")).status == 200
    assert (await status_of(world, account)).status is Status.ACTIVE


async def test_each_reason_clears_on_its_own(world):
    account = await active_account(world)
    await add_degraded_reason(world.services, account, "breaker")
    await hold(world.services, poisoned(Sync(account=account)))
    assert degraded_reasons(await status_of(world, account)) == {"breaker", "poison:sync"}
    await discard_poison(world.services, "sync", "m-1")
    saved = await status_of(world, account)
    assert saved.status is Status.DEGRADED
    assert degraded_reasons(saved) == {"breaker"}


@pytest.mark.parametrize(("queue", "message_id"), [("sync", "nope"), ("bogus", "m-1"), ("sync-poison", "m-1")])
async def test_unknown_queue_or_id_is_404(world, queue, message_id):
    await hold(world.services, poisoned(Sync(account=new_account_id())))
    for action in (replay_poison, discard_poison):
        result = await action(world.services, queue, message_id)
        assert result.status == 404
        assert json.loads(result.body)["error"] == {"code": "poison_not_found", "field": "id",
                                                    "message": f"no poison message {message_id!r} of queue {queue!r}"}


async def test_a_payload_of_another_queue_is_not_replayed_onto_the_wrong_one(world):
    await hold(world.services, poisoned(Subscribe(account=new_account_id()), queue="sync"))
    result = await replay_poison(world.services, "sync", "m-1")
    assert result.status == 409
    assert json.loads(result.body)["error"]["code"] == "poison_not_replayable"


# --- listing ------------------------------------------------------------------------------------------

async def test_listing_filters_by_queue_account_and_state_and_pages_with_a_token(world):
    ada = await active_account(world)
    world.idp.add_user(type(world.idp.users["ada@contoso.test"])("tenant-1", "oid-bo", "bo@contoso.test"))
    bo = await active_account(world, "saas-user-2", "bo@contoso.test")
    for n in range(5):
        await hold(world.services, poisoned(Sync(account=ada, reason="timer"), f"a-{n}"))
    await hold(world.services, poisoned(Subscribe(account=ada), "s-1"))
    await hold(world.services, poisoned(Sync(account=bo), "b-1"))
    await discard_poison(world.services, "sync", "a-0")

    async def listing(**params) -> dict:
        result = await list_poison(world.services, {k: str(v) for k, v in params.items()})
        assert result.status == 200, result.text
        fits("PoisonPage", result.body)
        return json.loads(result.body)

    every = await listing()
    assert {(i["queue"], i["id"]) for i in every["items"]} == {
        ("sync", "a-1"), ("sync", "a-2"), ("sync", "a-3"), ("sync", "a-4"), ("sync", "b-1"),
        ("subscriptions", "s-1")}
    assert every["next_page_token"] is None
    assert all(i["held_at"].endswith("Z") for i in every["items"])
    assert {i["id"] for i in (await listing(queue="subscriptions"))["items"]} == {"s-1"}
    assert {i["id"] for i in (await listing(account=bo))["items"]} == {"b-1"}
    assert {i["id"] for i in (await listing(account=ada, queue="sync"))["items"]} == {"a-1", "a-2", "a-3", "a-4"}
    assert [i["id"] for i in (await listing(state="discarded"))["items"]] == ["a-0"]
    for filters in ({}, {"account": ada}):
        seen, token, pages = [], None, 0
        while True:
            page = await listing(limit=2, **filters, **({"page_token": token} if token else {}))
            seen += [(i["queue"], i["id"]) for i in page["items"]]
            pages += 1
            token = page["next_page_token"]
            if token is None:
                break
        assert len(seen) == len(set(seen)) == (6 if not filters else 5)
        assert pages >= 3


@pytest.mark.parametrize(("params", "field"), [
    ({"queue": "sync-poison"}, "queue"), ({"account": "x"}, "account"), ({"state": "gone"}, "state"),
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"page_token": "garbage"}, "page_token"),
])
async def test_invalid_listing_parameters_name_the_field(world, params, field):
    result = await list_poison(world.services, params)
    assert result.status == 400
    fits("Error", result.body)
    assert json.loads(result.body)["error"]["code"] == "invalid_field"
    assert json.loads(result.body)["error"]["field"] == field
