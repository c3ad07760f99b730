"""Keys, scopes, rate limits, the outbound-request guard and secret references."""

# API Gateway keeps an authorizer's verdict this long: a revocation takes effect within it.
# Here, not in security.keys, so that app.py can declare its authorizer without importing
# pydantic (security.keys re-exports it).
AUTHORIZER_TTL = 60
