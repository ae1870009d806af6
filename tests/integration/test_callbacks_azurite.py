"""Callbacks through the real parts: the outbox row in Azurite, the product's HTTP client posting to a real
HTTP receiver, the receiver verifying with the example of docs/callbacks.md; a receiver answering 500 gets
the push again, then acknowledges it."""

from __future__ import annotations

import base64
import json

from shared.accounts.outbox import owe
from shared.messages import Callback, parse_message
from shared.pushes.worker import CallbackWorker
from shared.store.ports import OUTBOX
from shared.wiring import get_services
from tests.devstack.webhook import Webhook
from tests.unit.test_callbacks import ACCOUNT, documented_verify

SECRET = base64.b64encode(b"r" * 32).decode()


async def test_a_push_reaches_a_real_receiver_signed_and_is_retried_until_acknowledged(app_env):
    hook = Webhook(statuses={"/saas": 500}).start()
    try:
        app_env.setenv("SAAS_CALLBACK_URL", hook.url("saas"))
        app_env.setenv("SAAS_CALLBACK_SECRET", SECRET)
        services = get_services()
        row = await owe(services, ACCOUNT, "changes", {"account": ACCOUNT, "cursor": 12}, key="changes")
        (first,) = [parse_message(b) for b in await services.queue.peek("callbacks")]
        assert first == Callback(account=ACCOUNT, row=row)

        await CallbackWorker(services).handle(first)
        stored = await services.tables.get(OUTBOX, ACCOUNT, row)
        assert stored is not None
        assert (stored.get("attempts"), stored.get("last_status")) == (1, 500)

        hook.statuses["/saas"] = 204
        await CallbackWorker(services).handle(first)
        assert await services.tables.get(OUTBOX, ACCOUNT, row) is None
        posts = [p for p in hook.posts if p.path == "/saas"]
        assert len(posts) == 2
        verify = documented_verify()
        for post in posts:
            assert verify(post.body, post.headers["X-Signature"], SECRET)
            assert json.loads(post.body) == {"id": "changes", "type": "changes", "account": ACCOUNT, "cursor": 12}
    finally:
        hook.stop()
