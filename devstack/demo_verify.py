"""The demo SaaS page's check of a push's signature: docs/callbacks.md's verification function, copied
verbatim as a SaaS developer would copy it (hence its one-line import, allowed in pyproject.toml)."""

import base64, hashlib, hmac, time

def verify(body: bytes, header: str, secret_b64: str, window: int = 300) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or abs(time.time() - int(t)) > window:
        return False
    mac = hmac.new(base64.b64decode(secret_b64), t.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), v1)
