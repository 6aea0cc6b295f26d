"""Writing a file so that no reader ever sees it half written."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path):
    """Yield a temporary path beside ``path``; when the block succeeds, move it onto ``path``.

    The rename is atomic within a folder, so ``path`` holds either the old file or the whole new
    one; a failed or interrupted block removes the temporary file and leaves ``path`` alone. The
    new file gets the usual permissions (``mkstemp`` makes 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
