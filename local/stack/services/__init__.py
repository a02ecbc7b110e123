"""Local stand-ins for AWS services: DynamoDB Local and the moto server, each a context manager."""

from local.stack.services.dynamodb_local import DynamoDBLocal
from local.stack.services.moto_server import MotoServer

__all__ = ["DynamoDBLocal", "MotoServer"]
