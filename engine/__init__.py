"""Engine: the composition root, the message pipeline and the ``cairn`` CLI.

Nothing imports ``engine`` except entry points.
"""

__all__: list[str] = []
