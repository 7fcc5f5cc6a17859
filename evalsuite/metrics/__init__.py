"""Pure metric functions (no model, no I/O): SQuAD v2, DROP, TruthfulQA similarity, paired tests, win rates."""
