"""evalsuite's own task plugins, one module per task family (importable as ``evalsuite.tasks``)."""
