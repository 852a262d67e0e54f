"""The OpenAI-compatible HTTP API (FastAPI): chat, completions, models, mods, traces, health."""
