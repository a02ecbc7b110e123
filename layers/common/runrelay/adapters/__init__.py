"""The ports' implementations on AWS: DynamoDB (the only code that knows the table), S3, EventBridge."""
