"""Fixtures of the registry client's tests (the helpers behind them are in helpers.py)."""
from .helpers import app_server, cncf, cncf_auth, docker_config  # noqa: F401  (pytest fixtures)
