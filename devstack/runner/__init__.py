"""A local stand-in for the Azure Functions host: runs a v2-programming-model ``FunctionApp`` with
its HTTP, queue and timer triggers on localhost and Azurite (docs/devstack.md)."""
