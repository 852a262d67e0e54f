"""The backend-neutral mod runtime: requests, batching loop, mod time budgets, traces."""
