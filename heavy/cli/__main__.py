"""``python -m heavy.cli`` is the ``heavy`` command."""

from . import main

main()
