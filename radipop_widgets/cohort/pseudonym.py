"""Pseudonyms: a salted, keyed hash of the PatientID (never of the name).

``pseudonym(patient_id, salt)`` is HMAC-SHA256 keyed with a secret salt: the same ID and
salt always give the same pseudonym (a patient's studies stay together across exports),
and without the salt the ID cannot be recovered by hashing candidate IDs. Keep the salt
file out of the export and out of version control.

Examples
--------
>>> salt = b"0123456789abcdef0123456789abcdef"
>>> pseudonym("PAT-0042", salt)
'P-4d7cfdd95c319ec6'
>>> pseudonym("PAT-0042", salt) == pseudonym("PAT-0042", salt[::-1])
False
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..errors import RadipopError

#: The shortest salt accepted (bytes): 128 bits.
MIN_SALT_BYTES = 16


class SaltError(RadipopError):
    """A salt file that is missing, unreadable or too short."""


def pseudonym(patient_id: str, salt: bytes) -> str:
    """``P-`` and 16 hex digits of HMAC-SHA256(salt, PatientID)."""
    if len(salt) < MIN_SALT_BYTES:
        raise SaltError(f"the salt has {len(salt)} bytes, fewer than {MIN_SALT_BYTES}; "
                        "use a salt file made by new_salt_file (32 random bytes).")
    digest = hmac.new(salt, str(patient_id).strip().encode("utf-8"), hashlib.sha256)
    return "P-" + digest.hexdigest()[:16]


def new_salt_file(path) -> Path:
    """Write 32 random bytes (hex) to ``path``, readable by its owner only; refuses to
    replace an existing file (its pseudonyms would be lost)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path


def read_salt(path) -> bytes:
    """The salt in ``path`` (its text, stripped, as bytes)."""
    try:
        salt = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SaltError(f"cannot read the salt file {path} ({exc.strerror or exc}); create "
                        "one with `python -m radipop_widgets cohort salt FILE` and keep it "
                        "safe: the same salt gives the same pseudonyms.") from exc
    if len(salt) < MIN_SALT_BYTES:
        raise SaltError(f"the salt file {path} holds {len(salt)} bytes, fewer than "
                        f"{MIN_SALT_BYTES}; create one with `python -m radipop_widgets "
                        "cohort salt FILE`.")
    return salt
