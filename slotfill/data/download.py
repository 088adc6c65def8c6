"""Fetches the ATIS and SNIPS benchmarks (JointBERT layout) when they are not on disk.

The files come from a pinned commit of the public monologg/JointBERT repository and are
checked against SHA-256 digests recorded here, so a download is either exactly the expected
data or an error. Nothing of the datasets themselves lives in this repository.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from slotfill.errors import SlotfillError

logger = logging.getLogger(__name__)

JOINTBERT_COMMIT = "00324f60dda4a491b2913bc3065ae93966caea3f"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/monologg/JointBERT/{JOINTBERT_COMMIT}/data"
BASE_URL_ENV = "SLOTFILL_DATA_URL"

DATASETS = ("atis", "snips")
SPLITS = ("train", "dev", "test")
FILE_NAMES = ("seq.in", "seq.out", "label")

#: SHA-256 of every file, keyed by ``"<name>/<split>/<file>"`` (its path under the base URL).
SHA256: dict[str, str] = {
    "atis/dev/label": "06957cfe6fdffac84f8280bc3a1f8ca85c85631b363817aa4543aac611f8addf",
    "atis/dev/seq.in": "c7435b96e7948393608c34819628e863c5338f11ca68e8f896d2cc041d8e17f8",
    "atis/dev/seq.out": "83ccff3e36f83a993f8e5b5b82adf3256076f234abda4d784051381d7ac76922",
    "atis/test/label": "ce4bfe6590d9498e1078f30b4137d3e8b3e94277b444b26360c0bf2e9e282761",
    "atis/test/seq.in": "4b2119fc59c37f9398c6605db435d4f467505009e6ee3e5af04fed09f39dc397",
    "atis/test/seq.out": "a4690d6bceadc06876d1ff99bc401744aa981cb321e598ae12a3859d7be53254",
    "atis/train/label": "d0a771547665eecbdf9f96ea015ef07d1f6ee9f063e861020dafabb3c2a04377",
    "atis/train/seq.in": "3a670980841b21ab39088b2595efc17d487cdc45769c075a3e5f9458bba28c7f",
    "atis/train/seq.out": "14c7131bd66562f797dbd7189bc7358f0cf354c6afb0785a9ab973c35b58f34c",
    "snips/dev/label": "9c1dd041216f647bcfca838aaf1a48eb5781e4404256d31ff07cd38a5436c52f",
    "snips/dev/seq.in": "64e0f6d8ad8aab3a3828164d7d53731a0993d3ca1aed437ceaca6d3d568d410e",
    "snips/dev/seq.out": "712e6d34feb8d52d208b820a5f8bae6e6ff990f08374507dfde22de389088319",
    "snips/test/label": "37a26da3ad079bb41c42c85a3a8f827eb47efec4c5917ce5d08f4b2736e4f830",
    "snips/test/seq.in": "c1e341173fcea2951a8ca371956a6f81c76de87b9583c62eb87edd6158fa3a7c",
    "snips/test/seq.out": "58c07c9097d5e1f78889765c2a535a160f6455b90b3142055c8051847afcca47",
    "snips/train/label": "bfd7df6cf9dd76c5da5d8b61bc85f90386197bdd3d7510c1d324c051537b962f",
    "snips/train/seq.in": "04ad1e3f2121d83c6478f9a4b17d2dbdc21d06d6127f73cb7af835ed733f9855",
    "snips/train/seq.out": "fd5f2121d8055827e5d6b3d3bac30f3d7e94e82a5d437751960cbdd9e1b4f6d3",
}


def dataset_files(name: str) -> list[str]:
    """The 9 relative paths (``"<name>/<split>/<file>"``) that make up a dataset."""
    return [f"{name}/{split}/{file}" for split in SPLITS for file in FILE_NAMES]


def _one_line(text: object) -> str:
    """``str(text)`` with line breaks folded, for single-line messages."""
    return " ".join(str(text).split())


def _fetch(url: str, timeout: float) -> bytes:
    """Returns the body at ``url``; raises ``OSError``/``HTTPException``/``ValueError``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _failure_reason(err: BaseException, timeout: float) -> str:
    """A short description of why a fetch failed."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(err, urllib.error.URLError):
        if isinstance(err.reason, TimeoutError):
            return f"timed out after {timeout:g} s"
        return _one_line(err.reason)
    return _one_line(f"{type(err).__name__}: {err}")


def ensure_dataset(
    name: str, root: str | Path, *, base_url: str | None = None, timeout: float = 30.0
) -> Path:
    """Returns the dataset folder, downloading and verifying it first if it does not exist.

    An existing ``root`` is returned untouched (the readers report any missing file). Otherwise
    the 9 files are fetched into a hidden sibling folder, each is checked against
    :data:`SHA256`, and only then is the folder renamed to ``root`` in one step, so an
    interrupted or failed download never leaves a folder that looks complete.

    Args:
        name: ``"atis"`` or ``"snips"``.
        root: the dataset folder to provide, e.g. ``data/atis``.
        base_url: URL holding ``<name>/<split>/<file>``; defaults to ``$SLOTFILL_DATA_URL``,
            else :data:`DEFAULT_BASE_URL`.
        timeout: seconds allowed for each network operation.

    Returns:
        ``root``.

    Raises:
        SlotfillError: unknown ``name``, a failed fetch, a checksum mismatch, or a folder that
            cannot be written.
    """
    root = Path(root)
    if name not in DATASETS:
        raise SlotfillError(
            f"unknown dataset {name!r}: the downloader knows {', '.join(DATASETS)} -- "
            f"put a JointBERT-layout folder at {root} yourself"
        )
    if root.exists():
        return root

    base = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    by_hand = (
        f"fetch {name}/{{train,dev,test}}/{{seq.in,seq.out,label}} by hand into {root}, "
        f"or point SLOTFILL_DATA at a folder that holds {name}/"
    )
    partial = root.parent / f".{root.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        partial.mkdir()
    except OSError as err:
        raise SlotfillError(
            f"cannot create {partial}: {_one_line(err.strerror or err)} -- "
            f"make {root.parent} writable, or {by_hand}"
        ) from None

    logger.info("%s not found: downloading the %s dataset from %s", root, name, base)
    try:
        for relative in dataset_files(name):
            url = f"{base}/{relative}"
            try:
                body = _fetch(url, timeout)
            except (OSError, http.client.HTTPException, ValueError) as err:
                raise SlotfillError(
                    f"download of {url} failed: {_failure_reason(err, timeout)} -- {by_hand}"
                ) from None
            actual = hashlib.sha256(body).hexdigest()
            expected = SHA256[relative]
            if actual != expected:
                raise SlotfillError(
                    f"checksum mismatch for {relative} from {url}: expected sha256 {expected}, "
                    f"got {actual} -- the server does not hold JointBERT commit "
                    f"{JOINTBERT_COMMIT[:7]}; check {BASE_URL_ENV}/base_url, or {by_hand}"
                )
            target = partial / relative.split("/", 1)[1]
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
            except OSError as err:
                raise SlotfillError(
                    f"cannot write {target}: {_one_line(err.strerror or err)} -- "
                    f"free space or fix permissions under {root.parent}"
                ) from None
            logger.info("fetched %s (%d bytes, sha256 ok)", url, len(body))
        try:
            partial.rename(root)
        except OSError as err:
            if not root.exists():
                raise SlotfillError(
                    f"cannot move {partial} to {root}: {_one_line(err.strerror or err)} -- "
                    f"{by_hand}"
                ) from None
            logger.info("%s appeared during the download (another process); using it", root)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    logger.info("%s dataset ready in %s", name, root)
    return root
