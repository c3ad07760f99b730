"""Running NEXUS on this machine: an embedded AWS (moto) and the API on port 8000."""
