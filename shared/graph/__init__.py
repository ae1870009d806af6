"""Microsoft Graph: the client factory (msgraph-sdk for auth, middleware and URLs) and the one place
that turns Graph's status codes into the project's errors. Never imported by the webhook path."""
