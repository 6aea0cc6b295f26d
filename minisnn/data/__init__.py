"""Dataset loaders: each reads its dataset's real published format."""
from .errors import DataError

__all__ = ["DataError"]
