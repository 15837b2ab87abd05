"""stderr categories: recorded ``op`` wordings map to codes; names in them cannot fake a category."""

from __future__ import annotations

import pytest
from loom_secrets_op.errors import classify
from loom_secrets_op.reference import parse

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode

TS = "[ERROR] 2026/11/24 10:00:00 "


@pytest.mark.parametrize(
    ("ref", "stderr", "code"),
    [
        (
            "op://v/i/f",
            "could not read secret 'op://v/i/f': error initializing client: You are not currently "
            "signed in. Please run `op signin --help` for instructions",
            ErrorCode.SECRETS_AUTH_MISSING,
        ),
        ("op://v/i/f", "could not find session token for account my", ErrorCode.SECRETS_AUTH_MISSING),
        (
            "op://v/i/f",
            "could not read secret 'op://v/i/f': error initializing client: Validation: (failed to "
            "session.DecodeSACredentials), Server: (failed to DecodeSACredentials), illegal base64 data",
            ErrorCode.SECRETS_AUTH_INVALID,
        ),
        ("op://v/i/f", "(401) Unauthorized: invalid bearer token", ErrorCode.SECRETS_AUTH_INVALID),
        (
            "op://v/i/f",
            "(403) Forbidden: You aren't authorized to access this resource.",
            ErrorCode.SECRETS_ACCESS_DENIED,
        ),
        (
            "op://v/i/f",
            "could not read secret 'op://v/i/f': could not get item v/i: \"v\" isn't a vault in this "
            "account. Specify the vault with its ID or name.",
            ErrorCode.SECRETS_NOT_FOUND,
        ),
        (
            "op://v/i/f",
            "could not read secret 'op://v/i/f': could not get item v/i: \"i\" isn't an item in the "
            "\"v\" vault. Specify the item with its UUID, name, or domain.",
            ErrorCode.SECRETS_NOT_FOUND,
        ),
        (
            "op://v/i/f",
            "could not read secret 'op://v/i/f': item 'v/i' does not have a field 'f'",
            ErrorCode.SECRETS_FIELD_NOT_FOUND,
        ),
        (  # op 2.30's wording (its item-ID list follows on the next lines)
            "op://Shared/AWS/secret key",
            "could not resolve item UUID for item AWS: More than one item matches \"AWS\". Try again and "
            "specify the item by its ID:\n\t* for the item \"AWS\" in vault Shared: abc\n",
            ErrorCode.SECRETS_AMBIGUOUS,
        ),
        (  # op names an ambiguous item and its vault unquoted: the names must not pick the category
            "op://Unauthorized/Forbidden/password",
            "could not resolve item UUID for item Forbidden: More than one item matches \"Forbidden\". Try "
            "again and specify the item by its ID:\n\t* for the item \"Forbidden\" in vault Unauthorized: a1\n",
            ErrorCode.SECRETS_AMBIGUOUS,
        ),
        (  # an item *named* like that wording, missing, stays "not found"
            "op://v/More than one item matches/f",
            "could not read secret 'op://v/More than one item matches/f': could not get item v/More than one "
            "item matches: \"More than one item matches\" isn't an item in the \"v\" vault.",
            ErrorCode.SECRETS_NOT_FOUND,
        ),
        ("op://v/i/f", "(429) Too Many Requests", ErrorCode.SECRETS_PROVIDER_FAILED),
        ("op://v/i/f", "something new in a later op", ErrorCode.SECRETS_PROVIDER_FAILED),
        (
            "op://Forbidden/Unauthorized/invalid token",
            "could not read secret 'op://Forbidden/Unauthorized/invalid token': could not get item "
            "Forbidden/Unauthorized: \"Unauthorized\" isn't an item in the \"Forbidden\" vault.",
            ErrorCode.SECRETS_NOT_FOUND,
        ),
        (
            "op://prod/db/signed in",
            "could not read secret 'op://prod/db/signed in': item 'prod/db' does not have a field "
            "'signed in'",
            ErrorCode.SECRETS_FIELD_NOT_FOUND,
        ),
    ],
)
def test_recorded_wordings(ref: str, stderr: str, code: ErrorCode) -> None:
    """Each wording op prints maps to one code, even when vault/item names spell another category."""
    assert classify((TS + stderr + "\n").encode(), parse(SecretRef.parse(ref))).code == code
