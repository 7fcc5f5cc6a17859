"""evalsuite: measure what alignment fine-tuning does to a language model."""

__version__ = "0.1.0"
