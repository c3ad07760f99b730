from nexus_client.cli import run

run()
