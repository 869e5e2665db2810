"""A client for the Registry HTTP API v2 (OCI distribution spec), Docker Hub included."""
