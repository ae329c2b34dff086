"""Password hashing (argon2) and bearer tokens (JWT, HS256)."""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def create_token(username: str, secret: str, now: datetime, minutes: int) -> str:
    payload = {"sub": username, "iat": int(now.timestamp()),
               "exp": int((now + timedelta(minutes=minutes)).timestamp())}
    return jwt.encode(payload, secret, algorithm="HS256")


def read_token(token: str, secret: str) -> str | None:
    """Username from a valid, unexpired token; None for anything else."""
    try:
        payload = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    sub = payload.get("sub")
    return sub if isinstance(sub, str) else None
