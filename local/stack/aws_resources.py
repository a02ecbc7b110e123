"""Create a stack's tables, queues, bucket and secrets on DynamoDB Local and moto, from template.yaml.

Every setting comes from the template (through `local.stack.template_model` and the intrinsic resolver);
only the physical names are ours: `<stack>-<LogicalId>`, like CloudFormation's generated names.
Resources the local stack has no stand-in for (functions, APIs, log groups, alarms, ...) still get a
`PhysicalResource` so that `Ref`/`Fn::GetAtt` on them resolve to plausible names and ARNs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from local.stack import template_model
from local.stack.aws_credentials import LOCAL_CREDENTIALS
from local.stack.intrinsics import (
    ACCOUNT_ID,
    IntrinsicResolver,
    PhysicalResource,
    TemplateError,
    parameter_values,
    pseudo_parameters,
)

RUNWARE_API_KEY_SECRET_PARAMETER = "RunwareApiKeySecretName"  # noqa: S105 - a parameter name
INPUT_PREFIX_PARAMETER = "InputPrefix"

# Logical ids the rest of the project relies on (template.yaml).
TABLE = "TasksTable"
INGEST_QUEUE = "IngestQueue"
DEAD_LETTER_QUEUE = "IngestDeadLetterQueue"
RESULTS_DEAD_LETTER_QUEUE = "ResultsDeadLetterQueue"
INPUT_BUCKET = "InputBucket"
WEBHOOK_SECRET = "WebhookSecret"  # noqa: S105 - a logical id
EVENT_BUS = "EventBus"


@dataclass(frozen=True)
class AwsClients:
    dynamodb: Any
    s3: Any
    sqs: Any
    secretsmanager: Any
    events: Any
    dynamodbstreams: Any

    @classmethod
    def for_endpoints(cls, *, dynamodb_url: str, moto_url: str, region: str) -> AwsClients:
        config = Config(retries={"max_attempts": 3, "mode": "standard"})

        def client(service: str, url: str) -> Any:
            return boto3.client(
                service, endpoint_url=url, region_name=region, config=config, **LOCAL_CREDENTIALS
            )

        return cls(
            dynamodb=client("dynamodb", dynamodb_url),
            s3=client("s3", moto_url),
            sqs=client("sqs", moto_url),
            secretsmanager=client("secretsmanager", moto_url),
            events=client("events", moto_url),
            dynamodbstreams=client("dynamodbstreams", dynamodb_url),
        )


@dataclass(frozen=True)
class PhysicalNames:
    """Stack-prefixed physical names, within each service's naming rules."""

    stack_name: str

    def table(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"[:255]

    def queue(self, logical_id: str, *, fifo: bool = False) -> str:
        suffix = ".fifo" if fifo else ""
        return f"{self.stack_name}-{logical_id}"[: 80 - len(suffix)] + suffix

    def bucket(self, logical_id: str) -> str:
        name = re.sub(r"[^a-z0-9-]", "-", f"{self.stack_name}-{logical_id}".lower())
        return name[:63].strip("-")

    def secret(self, logical_id: str) -> str:
        return f"{self.stack_name}/{logical_id}"

    def other(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"


@dataclass(frozen=True)
class StackResources:
    """What was provisioned: physical names, URLs and ARNs, keyed by logical id in `physical`."""

    stack_name: str
    region: str
    account_id: str
    parameters: Mapping[str, str]
    physical: Mapping[str, PhysicalResource]
    runware_api_key_secret_arn: str | None = None
    secret_values: Mapping[str, str] = field(default_factory=dict, repr=False)

    def ref(self, logical_id: str) -> str:
        return self.physical[logical_id].ref

    def attribute(self, logical_id: str, name: str) -> str:
        return self.physical[logical_id].attributes[name]

    @property
    def table_name(self) -> str:
        return self.ref(TABLE)

    @property
    def table_arn(self) -> str:
        return self.attribute(TABLE, "Arn")

    @property
    def ingest_queue_url(self) -> str:
        return self.ref(INGEST_QUEUE)

    @property
    def ingest_queue_arn(self) -> str:
        return self.attribute(INGEST_QUEUE, "Arn")

    @property
    def dead_letter_queue_url(self) -> str:
        return self.ref(DEAD_LETTER_QUEUE)

    @property
    def dead_letter_queue_arn(self) -> str:
        return self.attribute(DEAD_LETTER_QUEUE, "Arn")

    @property
    def results_dead_letter_queue_url(self) -> str:
        return self.ref(RESULTS_DEAD_LETTER_QUEUE) if RESULTS_DEAD_LETTER_QUEUE in self.physical else ""

    @property
    def bucket_name(self) -> str:
        return self.ref(INPUT_BUCKET)

    @property
    def input_prefix(self) -> str:
        return self.parameters[INPUT_PREFIX_PARAMETER]

    @property
    def webhook_secret_arn(self) -> str:
        return self.ref(WEBHOOK_SECRET)

    @property
    def runware_api_key_secret_name(self) -> str:
        return self.parameters[RUNWARE_API_KEY_SECRET_PARAMETER]


def provision(
    template: Mapping[str, Any],
    clients: AwsClients,
    names: PhysicalNames,
    *,
    region: str,
    parameter_overrides: Mapping[str, str] | None = None,
    runware_api_key: str | None = None,
) -> StackResources:
    """Create every table, queue, bucket and secret of the template; store the Runware API key in the
    secret named by the `RunwareApiKeySecretName` parameter when `runware_api_key` is given."""
    parameters = parameter_values(template, parameter_overrides)
    physical: dict[str, PhysicalResource] = {}
    resolver = IntrinsicResolver(
        template,
        parameters=parameters,
        resources=physical,
        pseudo=pseudo_parameters(names.stack_name, region),
    )
    provisioner = _Provisioner(template, clients, names, resolver, physical, region)
    provisioner.run()
    _add_stand_ins(template, names, region, physical)

    key_arn = None
    if runware_api_key is not None:
        if RUNWARE_API_KEY_SECRET_PARAMETER not in parameters:
            raise TemplateError(f"template has no {RUNWARE_API_KEY_SECRET_PARAMETER} parameter")
        key_arn = _put_secret(
            clients.secretsmanager, parameters[RUNWARE_API_KEY_SECRET_PARAMETER], runware_api_key
        )
    return StackResources(
        stack_name=names.stack_name,
        region=region,
        account_id=ACCOUNT_ID,
        parameters=parameters,
        physical=dict(physical),
        runware_api_key_secret_arn=key_arn,
        secret_values=dict(provisioner.secret_values),
    )


class _Provisioner:
    def __init__(
        self,
        template: Mapping[str, Any],
        clients: AwsClients,
        names: PhysicalNames,
        resolver: IntrinsicResolver,
        physical: dict[str, PhysicalResource],
        region: str,
    ) -> None:
        self.template = template
        self.clients = clients
        self.names = names
        self.resolver = resolver
        self.physical = physical
        self.region = region
        self.secret_values: dict[str, str] = {}

    def of_type(self, resource_type: str) -> list[str]:
        resources: Mapping[str, Any] = self.template["Resources"]
        return [
            logical_id
            for logical_id, resource in resources.items()
            if resource.get("Type") == resource_type
            and ("Condition" not in resource or self.resolver.condition(resource["Condition"]))
        ]

    def run(self) -> None:
        for logical_id in self.of_type("AWS::SecretsManager::Secret"):
            self.secret(logical_id)
        for logical_id in self.of_type("AWS::DynamoDB::Table"):
            self.table(logical_id)
        for logical_id in self._queues_in_redrive_order():
            self.queue(logical_id)
        for logical_id in self.of_type("AWS::S3::Bucket"):
            self.bucket(logical_id)
        for logical_id in self.of_type("AWS::Events::EventBus"):
            self.event_bus(logical_id)

    # ------------------------------------------------------------------ tables
    def table(self, logical_id: str) -> None:
        ddb = self.clients.dynamodb
        name = self.names.table(logical_id)
        description = ddb.create_table(**template_model.table_create_kwargs(self.template, logical_id, name))
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        ttl_attribute = template_model.table_ttl_attribute(self.template, logical_id)
        if ttl_attribute:
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl_attribute, "Enabled": True}
            )
        table = description["TableDescription"]
        attributes = {"Arn": table["TableArn"]}
        if table.get("LatestStreamArn"):
            attributes["StreamArn"] = table["LatestStreamArn"]
        self.physical[logical_id] = PhysicalResource(ref=name, attributes=attributes)

    # ------------------------------------------------------------------ queues
    def _queues_in_redrive_order(self) -> list[str]:
        """Dead-letter queues before the queues that redrive to them."""
        ordered: list[str] = []
        pending = self.of_type("AWS::SQS::Queue")

        def visit(logical_id: str, trail: tuple[str, ...]) -> None:
            if logical_id in ordered:
                return
            if logical_id in trail:
                raise TemplateError(f"redrive cycle through {logical_id}")
            target = template_model.redrive_target(self.template, logical_id)
            if target is not None:
                visit(target[0], (*trail, logical_id))
            ordered.append(logical_id)

        for logical_id in pending:
            visit(logical_id, ())
        return ordered

    def queue(self, logical_id: str) -> None:
        properties = self.resolver.resolve(template_model.properties(self.template, logical_id))
        fifo = bool(properties.get("FifoQueue"))
        name = self.names.queue(logical_id, fifo=fifo)
        arns = {
            qid: resource.attributes["Arn"]
            for qid, resource in self.physical.items()
            if "Arn" in resource.attributes
        }
        attributes = template_model.queue_attributes(self.template, logical_id, arns)
        if fifo:
            attributes["FifoQueue"] = "true"
            if properties.get("ContentBasedDeduplication"):
                attributes["ContentBasedDeduplication"] = "true"
        sqs = self.clients.sqs
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.physical[logical_id] = PhysicalResource(
            ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url}
        )

    # ------------------------------------------------------------------ buckets
    def bucket(self, logical_id: str) -> None:
        s3 = self.clients.s3
        name = self.names.bucket(logical_id)
        # The template's BucketName (derived from the stack id) is replaced by our stack-prefixed one.
        properties = self.resolver.resolve(
            {
                k: v
                for k, v in template_model.properties(self.template, logical_id).items()
                if k != "BucketName"
            }
        )
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        self.physical[logical_id] = PhysicalResource(
            ref=name,
            attributes={
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
            },
        )
        versioning = properties.get("VersioningConfiguration")
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning["Status"]})
        encryption = properties.get("BucketEncryption")
        if encryption:
            rules = [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                for rule in encryption["ServerSideEncryptionConfiguration"]
                if "ServerSideEncryptionByDefault" in rule
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        block = properties.get("PublicAccessBlockConfiguration")
        if block:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
        notifications = properties.get("NotificationConfiguration")
        if notifications:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration=_notification_configuration(notifications)
            )

    # ------------------------------------------------------------------ event buses
    def event_bus(self, logical_id: str) -> None:
        # The template's Name (derived from the stack name) is replaced by our stack-prefixed one.
        name = self.names.other(logical_id)
        arn = self.clients.events.create_event_bus(Name=name)["EventBusArn"]
        self.physical[logical_id] = PhysicalResource(ref=name, attributes={"Arn": arn, "Name": name})

    # ------------------------------------------------------------------ secrets
    def secret(self, logical_id: str) -> None:
        properties = self.resolver.resolve(template_model.properties(self.template, logical_id))
        name = properties.get("Name") or self.names.secret(logical_id)
        if "SecretString" in properties:
            value = str(properties["SecretString"])
        elif "GenerateSecretString" in properties:
            value = self._generated_secret(properties["GenerateSecretString"])
        else:
            raise TemplateError(f"{logical_id}: neither SecretString nor GenerateSecretString")
        arn = _put_secret(self.clients.secretsmanager, name, value)
        self.secret_values[logical_id] = value
        self.physical[logical_id] = PhysicalResource(ref=arn, attributes={"Id": arn, "Name": name})

    def _generated_secret(self, spec: Mapping[str, Any]) -> str:
        """What CloudFormation stores for GenerateSecretString: a random password, optionally placed
        under GenerateStringKey inside the SecretStringTemplate JSON object."""
        options = {
            key: spec[key]
            for key in (
                "PasswordLength",
                "ExcludeCharacters",
                "ExcludeNumbers",
                "ExcludePunctuation",
                "ExcludeUppercase",
                "ExcludeLowercase",
                "IncludeSpace",
                "RequireEachIncludedType",
            )
            if key in spec
        }
        for key, value in options.items():
            if isinstance(value, str) and value.lower() in ("true", "false"):
                options[key] = value.lower() == "true"
        if "PasswordLength" in options:
            options["PasswordLength"] = int(options["PasswordLength"])
        password = self.clients.secretsmanager.get_random_password(**options)["RandomPassword"]
        if "SecretStringTemplate" not in spec:
            return str(password)
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document, separators=(",", ":"))


def _notification_configuration(cfn: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration spelled the way the S3 API wants it."""

    def converted(entry: Mapping[str, Any], target_key: str, api_key: str) -> dict[str, Any]:
        item: dict[str, Any] = {api_key: entry[target_key], "Events": [entry["Event"]]}
        rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules")
        if rules:
            item["Filter"] = {
                "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
            }
        return item

    api: dict[str, Any] = {}
    for cfn_key, target_key, api_key, api_list in (
        ("QueueConfigurations", "Queue", "QueueArn", "QueueConfigurations"),
        ("TopicConfigurations", "Topic", "TopicArn", "TopicConfigurations"),
        ("LambdaConfigurations", "Function", "LambdaFunctionArn", "LambdaFunctionConfigurations"),
    ):
        if cfn.get(cfn_key):
            api[api_list] = [converted(entry, target_key, api_key) for entry in cfn[cfn_key]]
    if cfn.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        api["EventBridgeConfiguration"] = {}
    return api


def _put_secret(client: Any, name: str, value: str) -> str:
    """Create the secret, or give an existing one (same moto server, earlier stack) the new value."""
    try:
        return str(client.create_secret(Name=name, SecretString=value)["ARN"])
    except client.exceptions.ResourceExistsException:
        return str(client.put_secret_value(SecretId=name, SecretString=value)["ARN"])


_STAND_IN_SERVICES = {
    "AWS::Serverless::Function": ("lambda", "function:{name}"),
    "AWS::Lambda::Function": ("lambda", "function:{name}"),
    "AWS::Serverless::LayerVersion": ("lambda", "layer:{name}:1"),
    "AWS::Logs::LogGroup": ("logs", "log-group:/aws/lambda/{name}:*"),
    "AWS::SNS::Topic": ("sns", "{name}"),
    "AWS::KMS::Key": ("kms", "key/{name}"),
}


def _add_stand_ins(
    template: Mapping[str, Any], names: PhysicalNames, region: str, physical: dict[str, PhysicalResource]
) -> None:
    """Names and ARNs for resources that exist only in the cloud, so references to them resolve."""
    for logical_id, resource in template["Resources"].items():
        if logical_id in physical:
            continue
        name = names.other(logical_id)
        service, resource_path = _STAND_IN_SERVICES.get(
            resource.get("Type", ""), ("cloudformation", "{name}")
        )
        arn = f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource_path.format(name=name)}"
        if service == "sns":
            physical[logical_id] = PhysicalResource(ref=arn, attributes={"Arn": arn, "TopicName": name})
        else:
            physical[logical_id] = PhysicalResource(ref=name, attributes={"Arn": arn})
