"""Model adapters: turn request batches into responses."""
