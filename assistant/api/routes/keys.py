"""/v1/keys: list, create and revoke scoped API keys, for admin keys only.

The same key store as `cx-assistant keys` (which needs no key: it works on CX_DATA_DIR
directly, so the first admin key is made there). A CX_API_KEYS key is not an admin key: it
could otherwise mint keys that outlive its own removal from the environment.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from assistant.api.deps import AdminKey
from assistant.api.errors import error_responses
from assistant.auth import Authenticator
from assistant.keys import NAME, SCOPE, KeyRecord, KeyStore

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[AdminKey])

Scope = Annotated[str, Field(pattern=SCOPE.pattern, min_length=1, max_length=512)]
KeyName = Annotated[str, Path(pattern=NAME.pattern, min_length=1, max_length=64,
                              examples=["acme-team"])]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "acme-team", "read": ["client-acme", "cx-knowledge"],
         "write": ["client-acme"], "admin": False}]})

    name: str = Field(pattern=NAME.pattern, min_length=1, max_length=64,
                      description="Unique, shown in the audit log (revoked names stay taken).")
    read: list[Scope] = Field(min_length=1, max_length=100, description=(
        "Collections the key may read: names or patterns ('*', 'client-*')."))
    write: list[Scope] = Field(default_factory=list, max_length=100, description=(
        "Collections the key may upload to and delete from (names or patterns)."))
    admin: StrictBool = Field(default=False, description="May manage keys.")


class KeyInfo(BaseModel):
    name: str
    read: list[str]
    write: list[str]
    admin: bool
    created_at: str
    last_used_at: str | None
    revoked: bool
    revoked_at: str | None

    @classmethod
    def of(cls, record: KeyRecord) -> KeyInfo:
        return cls(**record.public())


class KeyCreated(KeyInfo):
    secret: str = Field(description="The key itself: shown this once, only its digest is kept.")


class KeyList(BaseModel):
    data: list[KeyInfo]
    count: int


def _store(request: Request) -> KeyStore:
    auth: Authenticator = request.app.state.auth
    return auth.keys


@router.get("", response_model=KeyList, responses=error_responses(401, 403, 429))
def list_keys(request: Request) -> KeyList:
    """Every key, revoked ones too, with scopes and times; never a secret."""
    records = _store(request).records()
    return KeyList(data=[KeyInfo.of(r) for r in records], count=len(records))


@router.post("", response_model=KeyCreated, status_code=201,
             responses=error_responses(400, 401, 403, 409, 422, 429))
def create_key(body: KeyCreate, request: Request) -> KeyCreated:
    """Create a key; the reply carries its secret, which is never shown again."""
    record, secret = _store(request).create(body.name, body.read, body.write, body.admin)
    return KeyCreated(**record.public(), secret=secret)


@router.delete("/{name}", response_model=KeyInfo,
               responses=error_responses(401, 403, 404, 422, 429))
def revoke_key(name: KeyName, request: Request) -> KeyInfo:
    """Revoke a key: its next request is refused with 401 (no restart needed)."""
    return KeyInfo.of(_store(request).revoke(name))
