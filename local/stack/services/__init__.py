"""Local stand-ins for AWS services: DynamoDB Local and the moto server, each a context manager."""

from local.services.dynamodb_local import DynamoDBLocal
from local.services.moto_server import MotoServer

__all__ = ["DynamoDBLocal", "MotoServer"]
