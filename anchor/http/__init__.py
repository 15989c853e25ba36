"""The HTTP service: app factory and keys, API routes, pages, public limits, problems,
OpenAPI and static files."""
