"""heavy's built-in strategies, one per module, registered through the ``heavy.strategies`` entry points
in heavy's pyproject (the same way a third-party package registers its own)."""
