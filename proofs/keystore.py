"""Key files on disk: the only file I/O in ``proofs`` (see docs/adr/0003).

A private key file is written atomically (temp file in the same directory,
fsync, rename, fsync of the directory) with mode 0600 from the first byte, so a
power cut leaves either the old key or the new one and never a readable-by-all
or half-written key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import KeyError_
from .keys import SigningKey

__all__ = ["load_signing_key", "save_signing_key"]


def save_signing_key(
    key: SigningKey, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    target = Path(path)
    if target.exists() and not overwrite:
        raise KeyError_(f"refusing to overwrite existing key file {target}", code="key-exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.to_pem())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def load_signing_key(path: str | os.PathLike[str]) -> SigningKey:
    target = Path(path)
    try:
        st = target.stat()
    except FileNotFoundError as e:
        raise KeyError_(f"no key file at {target}", code="key-missing") from e
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(
            f"key file {target} is readable by others (mode {stat.S_IMODE(st.st_mode):o});"
            " run: chmod 600 " + str(target),
            code="key-permissions",
        )
    return SigningKey.from_pem(target.read_bytes())
