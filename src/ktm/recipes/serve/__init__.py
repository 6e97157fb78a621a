"""`ktm serve`: an OpenAI-compatible HTTP server for a ktm model."""
