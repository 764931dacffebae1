"""/api/secrets (custom secrets) and /api/unset-provider-tokens.

A custom secret becomes an environment variable (its name, upper-cased) in the shell of every
conversation started afterwards, and its value is masked in that conversation's events. Its
value is never sent back: listing shows names and descriptions only.

A name that changes how programs load or start (``LD_PRELOAD``, ``BASH_ENV``, ``PATH``...:
``convo.domain.secret_rules``) and a value holding NUL are refused with 422. A secret stored
under such a name before this rule existed can still be renamed or deleted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field

from convo.api.deps import StorageDep, UserIdDep
from convo.domain.conversation import CustomSecret
from convo.domain.secret_rules import (
    SECRET_NAME_PATTERN,
    refused_name_reason,
    refused_value_reason,
)

router = APIRouter(prefix="/api", tags=["secrets"])

# A stored name (to rename or delete): any environment variable name, even a refused one.
SecretName = Annotated[str, Path(pattern=SECRET_NAME_PATTERN)]


def _allowed_name(name: str) -> str:
    reason = refused_name_reason(name)
    if reason is not None:
        raise ValueError(reason)
    return name


def _allowed_value(value: str) -> str:
    reason = refused_value_reason(value)
    if reason is not None:
        raise ValueError(reason)
    return value


NewSecretName = Annotated[str, Field(pattern=SECRET_NAME_PATTERN), AfterValidator(_allowed_name)]
SecretValue = Annotated[str, Field(min_length=1), AfterValidator(_allowed_value)]


class CustomSecretBody(BaseModel):
    name: NewSecretName
    value: SecretValue
    description: str = ""


class CustomSecretUpdate(BaseModel):
    name: NewSecretName
    description: str = ""
    value: SecretValue | None = None  # absent: keep the value


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
