"""``python -m lis_bridge``: the same as ``yigong lis``."""

from lis_bridge.cli import app

app()
