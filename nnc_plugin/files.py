"""Files the plugin writes, and the folders it writes them in.

A file is written to a temporary file in its destination folder and renamed into place, so a
crash or Ctrl-C never leaves a half-written file and an existing file is replaced only by a
complete one.
"""
import os
import tempfile


def existing_ancestor(path):
    """`path` itself if it exists, else the nearest folder above it that does (where it would be made)."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def can_create_in(folder):
    """True when a file can be created in `folder` (tried, not guessed: root ignores permission bits)."""
    try:
        with tempfile.TemporaryFile(dir=folder):  # unnamed on Linux; removed at once elsewhere
            return True
    except OSError:
        return False


def write_atomically(path, data):
    """Write `data` (str or bytes) to `path` through a temporary file and a rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomically_with(path, lambda f: f.write(payload))


def write_atomically_with(path, fill):
    """Let `fill(binary_file)` write a temporary file beside `path`, then rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(temporary, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
