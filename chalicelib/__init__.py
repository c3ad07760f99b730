"""NEXUS Scheduler: domain and adapters behind the Chalice app in app.py."""
