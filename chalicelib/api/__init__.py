"""The API's self-description: its OpenAPI document, the shapes of its answers, its docs page."""
