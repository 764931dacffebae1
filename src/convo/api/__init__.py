"""HTTP API (FastAPI). The only place, with cli, that chooses implementations."""
