"""The embedded local stack: the template's functions in their own processes under AWS's runtime
interface client, their event sources (SQS, DynamoDB Streams, schedules, HTTP API), and the services
they talk to (DynamoDB Local, moto), provisioned from template.yaml. `local_stack.LocalStack` is the entry."""
