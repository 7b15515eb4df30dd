"""The web adapter every request passes through, wired in by the app: the principal
middleware (who asks, in which tenant), CSRF, body checks, security headers, the tenant
guard, error handlers, logs, health, the uvicorn runner, the tenant resolver and the API
token lookup cache. Context routes never import it: they use the kit in ``opencdmo.web``."""
