"""The dummy credentials every local client signs with (the local services accept any)."""

LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
