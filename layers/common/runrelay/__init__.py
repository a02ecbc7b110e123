"""runrelay: S3/SQS events to Runware MiniMax M2.7 text inference, completions stored in DynamoDB."""
