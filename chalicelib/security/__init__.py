"""Keys, scopes, rate limits, the outbound-request guard and secret references."""
