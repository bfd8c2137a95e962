"""heavy's built-in strategies, one per module, registered through the ``heavy.strategies`` entry points
in heavy's pyproject (the same way a third-party package registers its own). They decide with the public
toolkit of :class:`heavy.strategy.Context`, nothing a third-party strategy cannot use."""
