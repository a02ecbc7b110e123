"""The one error type the CLI shows to its user, and the translation of AWS errors into it."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

_REFUSED_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
}


class CliError(Exception):
    """A problem the user can fix; shown as `error: <message>` with exit status 2."""


def explain_aws_error(error: BotoCoreError | ClientError) -> CliError:
    """A sentence a user can act on, for the AWS errors a CLI user actually meets."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return CliError(
            "no AWS credentials found: set AWS_PROFILE or run `aws configure` "
            "(or drop --stack to use the local stack from `make up`)"
        )
    if isinstance(error, NoRegionError):
        return CliError("no AWS region: pass --region or set AWS_REGION")
    if isinstance(error, EndpointConnectionError):
        return CliError(
            f"cannot reach {error.kwargs.get('endpoint_url', 'the endpoint')}: "
            "is `make up` still running (or the region right)?"
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in _REFUSED_CREDENTIALS:
            return CliError(f"AWS refused the credentials ({code}): {message}")
        if code in {"AccessDenied", "AccessDeniedException"}:
            return CliError(f"AWS denied access ({code}): {message}")
        return CliError(f"{error.operation_name} failed ({code}): {message}")
    return CliError(f"AWS call failed: {error}")
