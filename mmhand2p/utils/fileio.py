# Copyright (c) mmhand2p contributors. All rights reserved.
"""Small file helpers shared by the package and its tools."""
import hashlib


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks of ``chunk`` bytes."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()
