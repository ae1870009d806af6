"""An app the runner must refuse: it declares an output binding the runner would silently drop."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp()


@app.route(route="enqueue", auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="items", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set("x")
    return func.HttpResponse("queued")
