"""Pure metric functions (no model, no I/O): SQuAD v2, DROP and TruthfulQA similarity."""
