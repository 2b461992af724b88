"""The ground every settings model stands on: strict models, and secrets as ``${ENV}`` references.

A secret field holds a reference such as ``${SLACK_BOT_TOKEN}``, never the value; the value is
read from the environment where it is used (:func:`resolve_secret`).
"""

from __future__ import annotations

import os
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
ENV_IN_STRING = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _must_be_env_ref(value: str) -> str:
    if not ENV_REF.match(value):
        raise ValueError("secrets are read from the environment: write ${ENV_VAR}, not the value itself")
    return value


#: A secret: always a ``${ENV_VAR}`` reference, resolved only where it is used.
SecretRef = Annotated[str, AfterValidator(_must_be_env_ref)]


def resolve_secret(ref: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The secret's value from the environment, or None when it is unset or empty."""
    if ref is None:
        return None
    match = ENV_REF.match(ref)
    if not match:
        return None
    value = (environ if environ is not None else os.environ).get(match.group(1))
    return value or None


def secret_name(ref: str | None) -> str | None:
    match = ENV_REF.match(ref or "")
    return match.group(1) if match else None


def expand_env(value: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in a non-secret string (e.g. a database URL)."""
    env = environ if environ is not None else os.environ

    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1)) or (m.group(2) or "")

    return ENV_IN_STRING.sub(sub, value)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
