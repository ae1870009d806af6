"""The table of contents: every Azure Function of the app, each a few lines that parse the trigger
input, await one handler in shared/, and shape the output.

Nothing here connects to anything at import time: the host imports this module to index the
functions, and a cold start must stay fast (the webhook answers Graph's handshake within 10 s).
"""

from __future__ import annotations

import azure.functions as func

from shared.ops import health
from shared.ops.logging import install_redaction

install_redaction()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health_check(req: func.HttpRequest) -> func.HttpResponse:
    report = health.check()
    return func.HttpResponse(report.to_json(), status_code=report.http_status, mimetype="application/json")
