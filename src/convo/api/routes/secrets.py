"""/api/secrets (custom secrets) and /api/unset-provider-tokens.

A custom secret becomes an environment variable (its name, upper-cased) in the shell of every
conversation started afterwards, and its value is masked in that conversation's events. Its
value is never sent back: listing shows names and descriptions only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from convo.api.deps import StorageDep, UserIdDep
from convo.domain.conversation import CustomSecret

router = APIRouter(prefix="/api", tags=["secrets"])

SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
SecretName = Annotated[str, Path(pattern=SECRET_NAME_PATTERN)]


class CustomSecretBody(BaseModel):
    name: str = Field(pattern=SECRET_NAME_PATTERN)
    value: str = Field(min_length=1)
    description: str = ""


class CustomSecretUpdate(BaseModel):
    name: str = Field(pattern=SECRET_NAME_PATTERN)
    description: str = ""
    value: str | None = Field(default=None, min_length=1)  # absent: keep the value


class CustomSecretView(BaseModel):
    name: str
    description: str = ""


class CustomSecretList(BaseModel):
    custom_secrets: list[CustomSecretView]


def _message(text: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse({"message": text}, status_code=status_code)


def _not_found(name: str) -> JSONResponse:
    return _message(f"Secret {name} not found", 404)


@router.get("/secrets", response_model=CustomSecretList)
async def list_secrets(storage: StorageDep, user_id: UserIdDep) -> CustomSecretList:
    stored = await storage.settings.load_secrets(user_id)
    return CustomSecretList(
        custom_secrets=[
            CustomSecretView(name=name, description=secret.description)
            for name, secret in sorted(stored.custom_secrets.items())
        ]
    )


@router.post("/secrets", status_code=201)
async def create_secret(
    body: CustomSecretBody, storage: StorageDep, user_id: UserIdDep
) -> JSONResponse:
    stored = await storage.settings.load_secrets(user_id)
    if body.name in stored.custom_secrets:
        return _message(f"Secret {body.name} already exists", 400)
    stored.custom_secrets[body.name] = CustomSecret(body.value, body.description)
    await storage.settings.save_secrets(user_id, stored)
    return _message("Secret created successfully", 201)


@router.put("/secrets/{secret_id}")
async def update_secret(
    secret_id: SecretName, body: CustomSecretUpdate, storage: StorageDep, user_id: UserIdDep
) -> JSONResponse:
    stored = await storage.settings.load_secrets(user_id)
    existing = stored.custom_secrets.get(secret_id)
    if existing is None:
        return _not_found(secret_id)
    if body.name != secret_id and body.name in stored.custom_secrets:
        return _message(f"Secret {body.name} already exists", 400)
    del stored.custom_secrets[secret_id]
    stored.custom_secrets[body.name] = CustomSecret(
        body.value if body.value is not None else existing.secret, body.description
    )
    await storage.settings.save_secrets(user_id, stored)
    return _message("Secret updated successfully")


@router.delete("/secrets/{secret_id}")
async def delete_secret(
    secret_id: SecretName, storage: StorageDep, user_id: UserIdDep
) -> JSONResponse:
    stored = await storage.settings.load_secrets(user_id)
    if stored.custom_secrets.pop(secret_id, None) is None:
        return _not_found(secret_id)
    await storage.settings.save_secrets(user_id, stored)
    return _message("Secret deleted successfully")


@router.post("/unset-provider-tokens")
async def unset_provider_tokens(storage: StorageDep, user_id: UserIdDep) -> JSONResponse:
    stored = await storage.settings.load_secrets(user_id)
    stored.provider_tokens.clear()
    await storage.settings.save_secrets(user_id, stored)
    return _message("Unset Git provider tokens")
