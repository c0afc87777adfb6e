"""Writing files so that a reader never sees half of one: the one atomic-write helper every package uses."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO[Any]], object], *,
                 mode: int | None = None, durable: bool = True) -> Path:
    """Write ``path`` whole or not at all: a temporary file in the same folder, flushed and fsynced, then
    renamed over ``path``. ``data`` is bytes, text (UTF-8) or a function that writes to a binary file
    object (``np.save``, ``torch.save``, ``json.dump`` through a wrapper). ``mode`` sets permissions
    (e.g. ``0o600`` for secrets) before the file appears under its name. On any error the temporary file
    is removed and ``path`` keeps its old content. ``durable=False`` skips the fsyncs (scratch files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: object, **dump: Any) -> Path:
    """``obj`` as JSON (indent 2, sorted keys unless given), written atomically."""
    import json

    dump = {"indent": 2, "sort_keys": True, **dump}
    return atomic_write(path, json.dumps(obj, **dump) + "\n")


def read_json_object(path: Path | str, what: str = "settings") -> dict[str, Any]:
    """A JSON file holding one object (a config's overrides); errors name the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object of {what}")
    return value
