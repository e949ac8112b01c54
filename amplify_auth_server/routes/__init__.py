"""The HTTP API, one module per concern: validation, management, operations."""
