"""The ``subscriptions`` table.

- ``{account} / res:{resource}``: the slot of one resource. It holds the live subscription id (or none)
  and a creation claim; claiming it with an ETag is what keeps two workers from creating two live
  subscriptions for one account and resource.
- ``{account} / {subscription id}``: one subscription: resource, expiry as Graph returned it, the
  clientState key id and generation, and the account's connection generation whose token last created,
  renewed or reauthorized it (a reconnect makes it stale: the subscription is reauthorized).
- ``exp:{YYYY-MM-DDTHH} / {account}|{subscription id}``: the expiry time-bucket index the renewer reads,
  written before the subscription row (other partition: readers verify, the renewer tolerates strays).
- ``needsub / {account}``: accounts that should have a subscription and do not (yet); the renewer
  re-queues ``subscribe`` for any left there too long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.store.ports import Row

SLOT_PREFIX = "res:"
BUCKET_PREFIX = "exp:"
NEEDS_SUBSCRIPTION = "needsub"
BUCKET_SECONDS = 3600


def slot_key(resource: str) -> str:
    return SLOT_PREFIX + resource


def bucket_partition(expires_at: float) -> str:
    return BUCKET_PREFIX + datetime.fromtimestamp(expires_at, tz=UTC).strftime("%Y-%m-%dT%H")


def bucket_row_key(account: str, subscription_id: str) -> str:
    return f"{account}|{subscription_id}"


@dataclass(frozen=True)
class SubscriptionRecord:
    account: str
    id: str
    resource: str
    expires_at: float
    key_id: str
    generation: int
    created_at: float
    connection_generation: int = 0
    etag: str | None = None

    def to_row(self) -> Row:
        return Row(self.account, self.id, {
            "resource": self.resource, "expires_at": self.expires_at,
            "expires_iso": datetime.fromtimestamp(self.expires_at, tz=UTC).isoformat(),
            "key_id": self.key_id, "generation": self.generation, "created_at": self.created_at,
            "connection_generation": self.connection_generation}, self.etag)

    @classmethod
    def from_row(cls, row: Row) -> SubscriptionRecord:
        return cls(row.partition, row.row, str(row.get("resource")), float(row.get("expires_at")),
                   str(row.get("key_id")), int(row.get("generation", 0)), float(row.get("created_at", 0.0)),
                   int(row.get("connection_generation", 0)), row.etag)

    def bucket_row(self) -> Row:
        return Row(bucket_partition(self.expires_at), bucket_row_key(self.account, self.id),
                   {"account": self.account, "subscription": self.id, "expires_at": self.expires_at})
