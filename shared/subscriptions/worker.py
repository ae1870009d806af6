"""The subscription worker (queue ``subscriptions``): create, renew, reauthorize and delete one account's
Graph subscriptions, as the account's status allows (the status matrix in shared/accounts/model.py:
``degraded`` keeps its subscription, ``needs_reconnect`` lets it expire,
``unsupported`` and ``disconnected`` delete it).

Every handler is idempotent: the same message twice changes nothing more. A slot row per resource,
claimed with its ETag, keeps two workers from creating two live subscriptions for one resource, and a
stray found at Graph (a create whose answer was lost) is deleted.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace

from shared.accounts.model import Account, SubscriptionPolicy
from shared.accounts.repository import AccountRepository
from shared.context import Services
from shared.errors import NotFound, StorageConflict
from shared.ids import new_opaque_id
from shared.messages import Message, Reauthorize, Renew, Subscribe, Unsubscribe
from shared.ops.journal import JournalEntry
from shared.ops.logging import log_context
from shared.store.ports import SUBSCRIPTIONS, Row, TableOp, Value
from shared.subscriptions.gateway import GraphSubscription, NewSubscription, SubscriptionGateway
from shared.subscriptions.rows import NEEDS_SUBSCRIPTION, SLOT_PREFIX, SubscriptionRecord, slot_key
from shared.webhook.client_state import make_client_state

log = logging.getLogger("shared.subscriptions")

CHANGE_TYPE = "created,updated,deleted"
# A creation claim older than this is abandoned (its worker died): another worker may take the slot.
CLAIM_SECONDS = 120


class SlotBusy(StorageConflict):
    """Another worker is creating this resource's subscription right now: retry the message later."""


@dataclass
class SubscriptionWorker:
    services: Services
    gateway: SubscriptionGateway

    async def handle(self, message: Message) -> None:
        account = await AccountRepository(self.services.tables).get(message.account)
        if account is None:
            log.warning("%s for an unknown account dropped", message.kind)
            return
        with log_context(account=account.account, tenant=account.identity.tenant, stage=message.kind):
            policy = account.rules.subscription
            if isinstance(message, Unsubscribe) or policy is SubscriptionPolicy.DELETE:
                await self.delete_all(account)
            elif policy is not SubscriptionPolicy.KEEP:
                # pending: nothing yet; needs_reconnect: the subscription is left to expire.
                await self._journal(account, message.kind, "info", f"skipped: account is {account.status.value}")
            elif isinstance(message, Subscribe):
                await self.ensure(account)
            elif isinstance(message, Renew):
                await self.renew(account, message.subscription)
            elif isinstance(message, Reauthorize):
                await self.reauthorize(account, message.subscription)
            else:
                raise ValueError(f"{message.kind} does not belong on the subscriptions queue")

    # --- create ------------------------------------------------------------------------------------

    def resource(self, account: Account) -> str:
        return f"users/{account.identity.user}/events"

    async def ensure(self, account: Account) -> SubscriptionRecord:
        """The account's live subscription, renewed or created as needed. Graph is asked, not only the
        table: a subscriptionRemoved lifecycle event (a password reset) means the recorded one is gone."""
        resource = self.resource(account)
        slot = await self.services.tables.get(SUBSCRIPTIONS, account.account, slot_key(resource))
        current = await self._record(account.account, slot.get("subscription")) if slot else None
        at_graph = await self.gateway.list(account.account)
        if current is not None and current.id not in {s.id for s in at_graph}:
            await self._forget(current)
            await self._journal(account, "subscribe", "info", f"{current.id} is gone at Graph; recreating")
            current = None
        if current is not None and current.connection_generation != account.generation:
            # Authorized by an earlier connection (before a reconnect): Graph may hold it paused after an
            # unanswered reauthorizationRequired, losing every change, so reauthorize it with this token.
            return await self.reauthorize(account, current.id)
        if current is not None:
            if current.expires_at > self.services.clock() + self._margin():
                await self._clear_needs_subscription(account.account)
                return current
            return await self.renew(account, current.id)
        return await self._create(account, resource, slot, at_graph)

    async def _create(self, account: Account, resource: str, slot: Row | None,
                      at_graph: list[GraphSubscription]) -> SubscriptionRecord:
        settings, now = self.services.settings, self.services.clock()
        tables = self.services.tables
        await tables.upsert(SUBSCRIPTIONS, Row(NEEDS_SUBSCRIPTION, account.account, {"since": now}))
        claim: dict[str, Value] = {"claim": new_opaque_id(8), "claimed_at": now}
        if slot is None:
            try:
                slot = await tables.insert(SUBSCRIPTIONS, Row(account.account, slot_key(resource),
                                                              {**claim, "generation": 0}))
            except StorageConflict:
                raise SlotBusy("another worker is creating this subscription") from None
        else:
            if slot.get("claim") and now - float(slot.get("claimed_at", 0)) < CLAIM_SECONDS:
                raise SlotBusy("another worker is creating this subscription")
            try:
                merged = await tables.merge(SUBSCRIPTIONS, Row(slot.partition, slot.row, claim), etag=slot.etag)
            except StorageConflict:
                raise SlotBusy("another worker took this subscription's slot") from None
            slot = Row(slot.partition, slot.row, {**slot.data, **claim}, merged.etag)
        generation = int(slot.get("generation", 0)) + 1
        key = settings.client_state_keys[0]
        requested = now + settings.subscription_lifetime_minutes * 60
        try:
            created = await self.gateway.create(account.account, NewSubscription(
                resource=resource, change_type=CHANGE_TYPE,
                notification_url=f"{settings.public_base_url}/api/notifications",
                lifecycle_url=f"{settings.public_base_url}/api/lifecycle", expires_at=requested,
                client_state=make_client_state(key, account.account, generation, account.identity.tenant)))
        except BaseException:
            # Release the claim, or the retries of this very message would find it held and fail on it.
            await self._release_claim(slot)
            raise
        record = SubscriptionRecord(account.account, created.id, resource, created.expires_at, key.key_id,
                                    generation, now, account.generation)
        await tables.upsert(SUBSCRIPTIONS, record.bucket_row())  # the index first: readers verify it
        await tables.upsert(SUBSCRIPTIONS, record.to_row())
        try:
            await tables.replace(SUBSCRIPTIONS, Row(slot.partition, slot.row, {
                "subscription": created.id, "generation": generation}), etag=slot.etag)
        except StorageConflict:
            # Our claim was taken over (we were too slow): the other worker's subscription stands.
            await self._delete(record)
            raise SlotBusy("the subscription slot was taken over; this worker's subscription was deleted") from None
        await self._delete_strays(account, resource, at_graph)
        await self._clear_needs_subscription(account.account)
        clamped = created.expires_at < requested - 60
        expires = record.to_row().get("expires_iso")
        await self._journal(account, "subscribe", "ok", f"created {created.id}, expires {expires}"
                            + (" (Graph shortened the requested lifetime)" if clamped else ""))
        return record

    # --- renew, reauthorize --------------------------------------------------------------------------

    async def _release_claim(self, slot: Row) -> None:
        # A conflict: the claim was already taken over by another worker, nothing of ours to release.
        with contextlib.suppress(StorageConflict):
            await self.services.tables.merge(SUBSCRIPTIONS, Row(slot.partition, slot.row, {"claim": ""}),
                                             etag=slot.etag)

    async def renew(self, account: Account, subscription_id: str) -> SubscriptionRecord:
        record = await self._record(account.account, subscription_id)
        if record is None:
            return await self.ensure(account)  # not ours (anymore): make sure the live one is fine
        if record.expires_at > self.services.clock() + self._margin():
            # Renewed already (the renewer queues a renewal on every run until one lands): one PATCH
            # per subscription per renewal window is enough.
            log.info("renew of %s skipped: it expires after the renew margin", subscription_id)
            return record
        requested = self.services.clock() + self.services.settings.subscription_lifetime_minutes * 60
        try:
            renewed = await self.gateway.renew(account.account, subscription_id, requested)
        except NotFound:
            await self._forget(record)
            await self._journal(account, "renew", "info", f"{subscription_id} was gone at Graph; recreating")
            return await self.ensure(account)
        return await self._store_expiry(account, record, renewed, "renew")

    async def reauthorize(self, account: Account, subscription_id: str) -> SubscriptionRecord:
        record = await self._record(account.account, subscription_id)
        if record is None:
            return await self.ensure(account)
        try:
            await self.gateway.reauthorize(account.account, subscription_id)
        except NotFound:
            await self._forget(record)
            await self._journal(account, "reauthorize", "info", f"{subscription_id} was gone at Graph; recreating")
            return await self.ensure(account)
        authorized = replace(record, connection_generation=account.generation)
        saved = await self.services.tables.replace(SUBSCRIPTIONS, authorized.to_row(), etag=record.etag)
        await self._clear_needs_subscription(account.account)
        await self._journal(account, "reauthorize", "ok", f"reauthorized {subscription_id}")
        return replace(authorized, etag=saved.etag)

    async def _store_expiry(self, account: Account, record: SubscriptionRecord, graph: GraphSubscription,
                            operation: str) -> SubscriptionRecord:
        # Renewing reauthorizes too (Graph's lifecycle notifications page), with this connection's token.
        updated = replace(record, expires_at=graph.expires_at, connection_generation=account.generation)
        tables = self.services.tables
        await tables.upsert(SUBSCRIPTIONS, updated.bucket_row())
        saved = await tables.replace(SUBSCRIPTIONS, updated.to_row(), etag=record.etag)
        if updated.bucket_row().key != record.bucket_row().key:
            await tables.delete(SUBSCRIPTIONS, *record.bucket_row().key)
        await self._clear_needs_subscription(account.account)
        await self._journal(account, operation, "ok", f"{record.id} expires {updated.to_row().get('expires_iso')}")
        return replace(updated, etag=saved.etag)

    # --- delete --------------------------------------------------------------------------------------

    async def delete_all(self, account: Account) -> int:
        """Delete every subscription the account has at Graph and in the table."""
        tables = self.services.tables
        records = [SubscriptionRecord.from_row(r) async for r in tables.query(SUBSCRIPTIONS, account.account)
                   if not r.row.startswith(SLOT_PREFIX)]
        for record in records:
            await self._delete(record)
        slots = [r.row async for r in tables.query(SUBSCRIPTIONS, account.account, prefix=SLOT_PREFIX)]
        await tables.bulk_write(SUBSCRIPTIONS, [TableOp.delete(account.account, s) for s in slots])
        await self._clear_needs_subscription(account.account)
        await self._journal(account, "unsubscribe", "ok", f"deleted {len(records)} subscription(s)")
        return len(records)

    async def _delete(self, record: SubscriptionRecord) -> None:
        await self.gateway.delete(record.account, record.id)
        await self._forget(record)

    async def _forget(self, record: SubscriptionRecord) -> None:
        tables = self.services.tables
        await tables.delete(SUBSCRIPTIONS, record.account, record.id)
        await tables.delete(SUBSCRIPTIONS, *record.bucket_row().key)

    async def _delete_strays(self, account: Account, resource: str, at_graph: list[GraphSubscription]) -> None:
        """Subscriptions at Graph for this resource and our URL that we do not track: a create whose
        answer was lost, or a slot taken over. Two live ones would double every notification."""
        url = f"{self.services.settings.public_base_url}/api/notifications"
        for sub in at_graph:  # listed before our create, so our new subscription is not among them
            if sub.resource.lower().strip("/") == resource.lower() \
                    and (not sub.notification_url or sub.notification_url == url):
                await self.gateway.delete(account.account, sub.id)
                record = await self._record(account.account, sub.id)
                if record is not None:
                    await self._forget(record)
                await self._journal(account, "subscribe", "info", f"deleted stray subscription {sub.id}")

    # --- helpers -------------------------------------------------------------------------------------

    def _margin(self) -> float:
        return self.services.settings.renew_margin_minutes * 60

    async def _record(self, account: str, subscription_id: object) -> SubscriptionRecord | None:
        if not isinstance(subscription_id, str) or not subscription_id:
            return None
        row = await self.services.tables.get(SUBSCRIPTIONS, account, subscription_id)
        return SubscriptionRecord.from_row(row) if row is not None else None

    async def _clear_needs_subscription(self, account: str) -> None:
        await self.services.tables.delete(SUBSCRIPTIONS, NEEDS_SUBSCRIPTION, account)

    async def _journal(self, account: Account, operation: str, outcome: str, detail: str) -> None:
        await self.services.journal.record(account.account, JournalEntry(
            operation, "ok" if outcome == "ok" else "info", stage="subscription", detail=detail))
