"""Scorers: turn model responses into numbers (toxicity, ...)."""
