"""Blob downloads: streamed to disk, verified as they arrive, resumable.

A blob is fetched with `GET /v2/<name>/blobs/<digest>` into a partial file.
Each chunk updates a SHA-256 and a byte count, so a wrong size stops the
download at once and a wrong digest is known the moment the last byte
arrives. Only a verified blob is renamed to its final path.

The partial file outlives the process (a dropped connection, a Ctrl-C, a
kill), so the next attempt hashes the bytes it already has and requests
the rest with `Range: bytes=N-`. A registry that ignores the range sends
200 and the whole blob, so the partial file starts over.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Callable

from registry_client.client import Repository
from registry_client.errors import BlobError

log = logging.getLogger(__name__)

# Bytes read per step. When a connection breaks, urllib3 drops the step's
# bytes, so a smaller step keeps more of an interrupted download.
CHUNK_SIZE = 64 * 1024
# Download attempts for one blob, each resuming where the last one stopped.
MAX_ATTEMPTS = 5

Progress = Callable[[int], None]   # called with the bytes downloaded so far


def download_blob(repository: Repository, digest: str, size: int, dest: str,
                  partial: str, progress: Progress | None = None) -> None:
    """Download blob `digest` of `size` bytes to `dest`, via the file `partial`.

    `partial` is kept when the download is interrupted, and reused by the
    next call. Raises `BlobError` naming the digest when the content does
    not match (the partial file is deleted then) or the registry fails.
    """
    progress = progress or (lambda done: None)
    url = repository.url(f"blobs/{digest}")
    # Create the file, so an empty blob also ends up with a file to rename.
    open(partial, "ab").close()
    attempt = 0
    while True:
        attempt += 1
        hasher, have = hash_partial(partial, size)
        progress(have)
        if have == size:
            break
        try:
            complete = fetch_range(repository, url, digest, size, partial, hasher, have,
                                   progress)
            if complete is not None:
                hasher = complete
                break
        except OSError as err:
            if attempt >= MAX_ATTEMPTS:
                raise BlobError(f"downloading blob {digest} failed: {err}",
                                method="GET", url=url) from err
            log.warning("download of blob %s stopped (%s); resuming (attempt %d of %d)",
                        digest, type(err).__name__, attempt + 1, MAX_ATTEMPTS)

    actual = "sha256:" + hasher.hexdigest()
    if actual != digest:
        os.unlink(partial)
        raise BlobError(f"blob {digest} failed verification: its content has digest "
                        f"{actual}; the download was deleted", method="GET", url=url,
                        hint="the registry or a proxy serves corrupted data")
    os.replace(partial, dest)


def hash_partial(partial: str, size: int):
    """Hash what an earlier attempt left in `partial`; return (hasher, bytes)."""
    hasher = hashlib.sha256()
    try:
        with open(partial, "rb") as file:
            while chunk := file.read(CHUNK_SIZE):
                hasher.update(chunk)
            have = file.tell()
    except FileNotFoundError:
        return hasher, 0
    if have > size:
        log.debug("partial file %s is larger than the blob; starting over", partial)
        os.unlink(partial)
        return hashlib.sha256(), 0
    if have:
        log.debug("resuming %s at byte %d of %d", partial, have, size)
    return hasher, have


def fetch_range(repository: Repository, url: str, digest: str, size: int, partial: str,
                hasher, have: int, progress: Progress):
    """Request bytes `have..` and append them to `partial`.

    Returns the SHA-256 hasher of the whole blob when it is complete, or
    None after a 416 to the range request: the partial file is deleted
    then, so the caller starts afresh. A 200 in reply to a range request
    carries the whole blob, so the partial file is rewritten from byte 0.
    """
    headers = {"Range": f"bytes={have}-"} if have else {}
    response = repository.request("GET", url, headers=headers, stream=True)
    with response:
        status = response.status_code
        if have and status == 416:
            log.debug("the registry rejected the range for %s; starting over", digest)
            os.unlink(partial)
            return None
        mode = "ab"
        if have and status == 200:
            log.debug("the registry ignored the range for %s; starting over", digest)
            have, hasher, mode = 0, hashlib.sha256(), "wb"
            progress(0)
        if status not in (200, 206):
            raise repository.error(f"downloading blob {digest} failed", "GET", url, response,
                                   BlobError)
        if status == 206 and not response.headers.get("Content-Range", "") \
                .startswith(f"bytes {have}-"):
            raise BlobError(f"invalid response to the range request for blob {digest}: "
                            f"Content-Range {response.headers.get('Content-Range')!r}",
                            method="GET", url=url)

        with open(partial, mode) as file:
            received = have
            for chunk in response.iter_content(CHUNK_SIZE):
                received += len(chunk)
                if received > size:
                    file.close()
                    os.unlink(partial)
                    raise BlobError(f"blob {digest} is larger than the {size} bytes its "
                                    "descriptor states; the download was deleted",
                                    method="GET", url=url)
                file.write(chunk)
                hasher.update(chunk)
                progress(received)
    if received < size:
        raise ConnectionError(f"the connection closed after {received} of {size} bytes")
    return hasher
