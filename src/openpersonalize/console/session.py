"""Signing in to the console when access keys are configured: the access key and secret key
of one of them (checked like a signature would be), then a session cookie, HMAC-signed with a
key derived from the configured secrets, that expires after ``SESSION_SECONDS``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

COOKIE = "openpersonalize_console"
SESSION_SECONDS = 12 * 3600


def _key(keys: dict[str, str]) -> bytes:
    material = "\n".join(f"{k}:{v}" for k, v in sorted(keys.items()))
    return hashlib.sha256(b"openpersonalize-console\n" + material.encode()).digest()


def valid_pair(keys: dict[str, str], access_key: str, secret: str) -> bool:
    expected = keys.get(access_key)
    return expected is not None and hmac.compare_digest(expected.encode(), secret.encode("utf-8", "replace"))


def issue(keys: dict[str, str], access_key: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
    payload = f"{access_key}:{expires}".encode()
    mac = hmac.new(_key(keys), payload, hashlib.sha256).hexdigest()
    return base64.urlsafe_b64encode(payload).decode() + "." + mac


def check(keys: dict[str, str], cookie: str | None, now: float | None = None) -> str | None:
    """The access key of a valid, unexpired session cookie; None otherwise."""
    if not cookie or "." not in cookie:
        return None
    encoded, mac = cookie.rsplit(".", 1)
    try:
        payload = base64.urlsafe_b64decode(encoded.encode())
        access_key, expires_text = payload.decode().rsplit(":", 1)
        expires = int(expires_text)
    except (ValueError, UnicodeError):
        return None
    good = hmac.new(_key(keys), payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good.encode(), mac.encode("utf-8", "replace")) or expires < (now or time.time()) or access_key not in keys:
        return None
    return access_key
