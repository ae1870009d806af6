"""host.json is read by the host; the product's own queue writer must agree with it."""

from __future__ import annotations

import json
from pathlib import Path

from shared.store.azure_queues import MESSAGE_ENCODING

HOST = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())


def test_queue_encoding_matches_the_host():
    assert HOST["extensions"]["queues"]["messageEncoding"] == MESSAGE_ENCODING


def test_queue_retry_and_polling_settings_follow_the_design():
    queues = HOST["extensions"]["queues"]
    assert queues["maxDequeueCount"] == 5
    assert queues["maxPollingInterval"] == "00:00:02"
    assert HOST["version"] == "2.0"
