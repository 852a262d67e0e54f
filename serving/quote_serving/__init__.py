"""Quote serving: ModRuntime, engine backends, the OpenAI-compatible API and `quote serve`."""
