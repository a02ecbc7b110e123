"""template.yaml: the linters and the build the deployment relies on, plus the properties the code
and the operations story depend on (names other modules read, queue/lambda timing, data safety)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from local.stack.template_model import function_config, properties, redrive_target
from runrelay.domain.tasks import FINAL_STATUSES
from runrelay.settings import RuntimeSettings
from tests.support.iam_policy import statements_of

from .conftest import ROOT, TEMPLATE, run

FUNCTIONS = {"SubmitFunction": "submit", "WebhookFunction": "webhook", "ReconcileFunction": "reconcile"}
COMMON_ENV = {
    "TABLE_NAME",
    "RUNWARE_API_URL",
    "PAYLOAD_BUCKET",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
FUNCTION_ENV = {
    "SubmitFunction": {
        "RUNWARE_API_KEY_SECRET_ID",
        "WEBHOOK_SECRET_ID",
        "WEBHOOK_BASE_URL",
        "MAX_TASKS_PER_REQUEST",
        "FAN_OUT_RANGE_BYTES",
        "INGEST_QUEUE_URL",
    },
    "WebhookFunction": {"WEBHOOK_SECRET_ID", "MAX_WEBHOOK_BODY_BYTES"},
    "ReconcileFunction": {
        "RUNWARE_API_KEY_SECRET_ID",
        "OVERDUE_AFTER_SECONDS",
        "MAX_TASK_AGE_SECONDS",
        "RECONCILE_MAX_TASKS_PER_RUN",
    },
}
STACK_SUFFIX = {
    "Fn::Select": [
        4,
        {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]},
    ]
}


# ---------------------------------------------------------------- the tools


def test_cfn_lint_is_clean(tool_env: dict[str, str]) -> None:
    # The project venv's cfn-lint (the one `make test` installs), beside the running interpreter.
    result = run([str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)], tool_env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint(sam: str, tool_env: dict[str, str]) -> None:
    result = run([sam, "validate", "--lint", "--template-file", str(TEMPLATE)], tool_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_checkov_passes(checkov: str, tool_env: dict[str, str]) -> None:
    result = run(
        [
            checkov,
            "-f",
            str(TEMPLATE),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--quiet",
            "--compact",
        ],
        tool_env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout, result.stdout


def test_every_skip_is_justified(template: dict[str, Any]) -> None:
    for logical_id, resource in template["Resources"].items():
        metadata = resource.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
            assert len(skip.get("comment", "")) > 20, f"{logical_id}: checkov skip {skip['id']} unexplained"
        assert "cfn-lint" not in metadata, f"{logical_id}: cfn-lint ignores are not expected"
    assert "cfn-lint" not in template.get("Metadata", {})


@pytest.fixture(scope="module")
def built(sam: str, tool_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` without Docker into a temp dir (--no-cached: nothing is written inside the repo)."""
    tmp = tmp_path_factory.mktemp("sam")
    build_dir = tmp / "build"
    result = run(
        [
            sam,
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(tmp / "cache"),
            "--no-cached",
        ],
        tool_env,
        timeout=540,  # inside pytest-timeout's 600 s
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build_dir


def test_sam_build_layer_has_package_and_arm64_wheels(built: Path) -> None:
    python = built / "CommonLayer" / "python"
    assert (python / "runrelay" / "contract.py").is_file()
    assert (python / "aws_lambda_powertools").is_dir()
    cores = list((python / "pydantic_core").glob("_pydantic_core*.so"))
    assert cores, "pydantic_core's compiled module is missing from the layer"
    assert all("aarch64" in so.name and "cpython-313" in so.name for so in cores), cores


def test_sam_build_packages_each_handler(built: Path) -> None:
    for logical_id in FUNCTIONS:
        app = built / logical_id / "app.py"
        assert app.is_file(), f"{app} missing: functions/{FUNCTIONS[logical_id]}/app.py not written yet?"
        assert re.search(r"^def lambda_handler\(", app.read_text(), re.MULTILINE), app
    built_template = (built / "template.yaml").read_text()
    for logical_id in [*FUNCTIONS, "CommonLayer"]:
        assert re.search(rf"(CodeUri|ContentUri): {logical_id}\b", built_template), logical_id


# ---------------------------------------------------------------- structure


def test_parameters_and_defaults(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    expected = {
        "RunwareApiKeySecretName": "runrelay/runware-api-key",
        "RunwareApiUrl": "https://api.runware.ai/v1",
        "InputPrefix": "incoming/",
        "LogLevel": "INFO",
        "AlarmEmail": "",
        "TaskRetentionDays": 30,
        "MaxTasksPerRequest": 100,
        "FanOutRangeBytes": 16777216,
        "OverdueAfterSeconds": 900,
        "MaxTaskAgeSeconds": 86400,
        "ReconcileMaxTasksPerRun": 20000,
        "SubmitMaxConcurrency": 10,
        "ResultsParallelizationFactor": 1,
        "Environment": "dev",
    }
    assert {name: params[name]["Default"] for name in expected} == expected
    assert params["TaskRetentionDays"]["Type"] == "Number"
    assert params["MaxTasksPerRequest"]["Type"] == "Number"
    # Every Powertools level must map onto a level Lambda's ApplicationLogLevel accepts.
    levels = template["Mappings"]["LambdaLogLevel"]
    assert set(levels) == set(params["LogLevel"]["AllowedValues"])
    assert {v["Level"] for v in levels.values()} <= {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}


def test_globals_runtime_architecture_tracing_logging(template: dict[str, Any]) -> None:
    for logical_id in FUNCTIONS:
        config = function_config(template, logical_id)
        assert config["Runtime"] == "python3.13"
        assert config["Architectures"] == ["arm64"]
        assert config["Tracing"] == "Active"
        assert config["Layers"] == [{"Ref": "CommonLayer"}]
        assert config["LoggingConfig"]["LogFormat"] == "JSON"
        assert config["LoggingConfig"]["LogGroup"] == {"Ref": f"{logical_id}LogGroup"}
        assert properties(template, f"{logical_id}LogGroup")["RetentionInDays"] > 0


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_handler_code_and_environment(template: dict[str, Any], logical_id: str) -> None:
    config = function_config(template, logical_id)
    assert config["Handler"] == "app.lambda_handler"
    assert config["CodeUri"] == f"functions/{FUNCTIONS[logical_id]}/"
    env = config["Environment"]["Variables"]
    assert COMMON_ENV | FUNCTION_ENV[logical_id] <= set(env)
    assert env["TABLE_NAME"] == {"Ref": "TasksTable"}
    assert env["RUNWARE_API_URL"] == {"Ref": "RunwareApiUrl"}
    assert env["PAYLOAD_BUCKET"] == {"Ref": "InputBucket"}
    if "WEBHOOK_SECRET_ID" in env:
        assert env["WEBHOOK_SECRET_ID"] == {"Ref": "WebhookSecret"}
    assert env["TASK_RETENTION_DAYS"] == {"Ref": "TaskRetentionDays"}
    if "INGEST_QUEUE_URL" in env:
        assert env["INGEST_QUEUE_URL"] == {"Ref": "IngestQueue"}
    if "RUNWARE_API_KEY_SECRET_ID" in env:
        assert env["RUNWARE_API_KEY_SECRET_ID"] == {"Ref": "RunwareApiKeySecretName"}


def test_webhook_base_url_is_the_api(template: dict[str, Any]) -> None:
    base = "https://${WebhookApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    env = function_config(template, "SubmitFunction")["Environment"]["Variables"]
    assert env["WEBHOOK_BASE_URL"] == {"Fn::Sub": base}
    outputs = template["Outputs"]
    assert outputs["WebhookApiUrl"]["Value"] == {"Fn::Sub": base}
    assert outputs["WebhookUrl"]["Value"] == {"Fn::Sub": base + "/webhooks/runware"}


def test_layer_definition(template: dict[str, Any]) -> None:
    layer = template["Resources"]["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/common"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    assert (ROOT / "layers/common/requirements.txt").is_file()
    assert (ROOT / "layers/common/runrelay/__init__.py").is_file()


def test_sqs_event_source_and_visibility_timeout(template: dict[str, Any]) -> None:
    submit = function_config(template, "SubmitFunction")
    event = submit["Events"]["Ingest"]
    assert event["Type"] == "SQS"
    ingest = event["Properties"]
    assert ingest["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert ingest["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= ingest["BatchSize"] <= 10
    assert ingest["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "SubmitMaxConcurrency"}
    assert template["Parameters"]["SubmitMaxConcurrency"]["MinValue"] == 2  # the AWS minimum
    assert template["Parameters"]["SubmitMaxConcurrency"]["MaxValue"] == 1000
    # AWS: visibility timeout >= 6 x function timeout, or a batch in retry gets handed out twice.
    assert properties(template, "IngestQueue")["VisibilityTimeout"] >= 6 * submit["Timeout"]


def test_dead_letter_queue(template: dict[str, Any]) -> None:
    assert redrive_target(template, "IngestQueue") == ("IngestDeadLetterQueue", 5)
    queue, dlq = properties(template, "IngestQueue"), properties(template, "IngestDeadLetterQueue")
    assert queue["MessageRetentionPeriod"] == 4 * 86400
    # The DLQ must outlive the source's retention, or a message could expire before landing there.
    assert dlq["MessageRetentionPeriod"] == 14 * 86400 > queue["MessageRetentionPeriod"]
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True


def test_webhook_route_and_timeout(template: dict[str, Any]) -> None:
    webhook = function_config(template, "WebhookFunction")
    event = webhook["Events"]["RunwareResult"]
    assert event["Type"] == "HttpApi"
    assert event["Properties"] == {
        "ApiId": {"Ref": "WebhookApi"},
        "Method": "POST",
        "Path": "/webhooks/runware",
        "PayloadFormatVersion": "2.0",
    }
    assert webhook["Timeout"] <= 10  # Runware expects an answer within ~5 s
    api = properties(template, "WebhookApi")
    assert "Auth" not in api  # the per-task HMAC token is the authentication
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["WebhookApiAccessLogs", "Arn"]}
    # The query string carries the token and must never reach the access log.
    assert "querystring" not in api["AccessLogSettings"]["Format"].lower()


def test_reconcile_schedule(template: dict[str, Any]) -> None:
    reconcile = function_config(template, "ReconcileFunction")
    (event,) = reconcile["Events"].values()
    assert event == {
        "Type": "Schedule",
        "Properties": {"Schedule": "rate(5 minutes)", "Description": event["Properties"]["Description"]},
    }
    assert reconcile["Timeout"] == 300


def _granted(template: dict[str, Any], logical_id: str, action: str) -> list[Any]:
    """The resources (as written) of a function's statements that allow `action`."""
    found: list[Any] = []
    for statement in statements_of(properties(template, logical_id)):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            resource = statement["Resource"]
            found.extend(resource if isinstance(resource, list) else [resource])
    return found


def test_function_policies(template: dict[str, Any]) -> None:
    """Which secrets each role reads (least privilege in full: tests/infrastructure/test_iam_policy.py
    and, from a recorded run, tests/e2e/test_least_privilege.py)."""
    api_key_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
        ":secret:${RunwareApiKeySecretName}-??????"
    }
    # Least privilege: the reconciler signs no webhook URLs, so it cannot read the webhook secret.
    expected_secrets = {
        "SubmitFunction": [api_key_arn, {"Ref": "WebhookSecret"}],
        "WebhookFunction": [{"Ref": "WebhookSecret"}],
        "ReconcileFunction": [api_key_arn],
        "ResultsFunction": [],
    }
    for logical_id, expected in expected_secrets.items():
        assert _granted(template, logical_id, "secretsmanager:GetSecretValue") == expected, logical_id


def test_the_results_stream_filter_lets_every_final_status_through(template: dict[str, Any]) -> None:
    # A final status the filter left out would never be counted, and its job would never complete.
    event = template["Resources"]["ResultsFunction"]["Properties"]["Events"]["TaskChanges"]["Properties"]
    patterns = [json.loads(f["Pattern"]) for f in event["FilterCriteria"]["Filters"]]
    statuses = [p["dynamodb"]["NewImage"]["status"]["S"] for p in patterns if "NewImage" in p["dynamodb"]]
    assert [sorted(s) for s in statuses] == [sorted(FINAL_STATUSES)]


def test_tasks_table(template: dict[str, Any]) -> None:
    resource = template["Resources"]["TasksTable"]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    table = resource["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert attributes == {
        "pk": "S",
        "sk": "S",
        "sourceId": "S",
        "sourceSeq": "N",
        "openShard": "S",
        "openSince": "N",
        "callerId": "S",
        "createdAt": "N",
    }
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    for name, (hash_key, range_key) in {
        "BySource": ("sourceId", "sourceSeq"),
        "OpenTasks": ("openShard", "openSince"),
        "ByCaller": ("callerId", "createdAt"),
    }.items():
        assert indexes[name]["KeySchema"] == [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": range_key, "KeyType": "RANGE"},
        ]
        assert indexes[name]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # DynamoDB rejects an attribute definition no key or index uses.
    used = {k["AttributeName"] for k in table["KeySchema"]}
    used |= {k["AttributeName"] for i in indexes.values() for k in i["KeySchema"]}
    assert used == set(attributes)


def test_input_bucket(template: dict[str, Any]) -> None:
    resource = template["Resources"]["InputBucket"]
    bucket = resource["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert any("NoncurrentVersionExpiration" in r for r in rules)
    assert any(
        r.get("Prefix") == "completions/" and r["ExpirationInDays"] == {"Ref": "TaskRetentionDays"}
        for r in rules
    )
    assert bucket["NotificationConfiguration"] == {
        "QueueConfigurations": [
            {
                "Event": "s3:ObjectCreated:*",
                "Queue": {"Fn::GetAtt": ["IngestQueue", "Arn"]},
                "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": {"Ref": "InputPrefix"}}]}},
            }
        ]
    }
    # S3 test-sends to the queue on creation, so the queue policy must exist first.
    assert resource["DependsOn"] == "IngestQueuePolicy"


def _statements(template: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    return properties(template, logical_id)["PolicyDocument"]["Statement"]


@pytest.mark.parametrize(
    ("logical_id", "action"), [("InputBucketPolicy", "s3:*"), ("IngestQueuePolicy", "sqs:*")]
)
def test_tls_only(template: dict[str, Any], logical_id: str, action: str) -> None:
    assert {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": _statements(template, logical_id)[-1]["Resource"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    } in _statements(template, logical_id)


def test_queue_policy_admits_only_the_input_bucket(template: dict[str, Any]) -> None:
    allows = [s for s in _statements(template, "IngestQueuePolicy") if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "AllowInputBucketNotifications",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": ["IngestQueue", "Arn"]},
            "Condition": {
                "ArnEquals": {
                    "aws:SourceArn": {
                        "Fn::Sub": [
                            "arn:${AWS::Partition}:s3:::runrelay-input-${AWS::AccountId}-${StackSuffix}",
                            {"StackSuffix": STACK_SUFFIX},
                        ]
                    }
                },
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            },
        }
    ]
    # The bucket's name is built from the same expression, so the two cannot drift apart.
    assert properties(template, "InputBucket")["BucketName"] == {
        "Fn::Sub": ["runrelay-input-${AWS::AccountId}-${StackSuffix}", {"StackSuffix": STACK_SUFFIX}]
    }


def test_webhook_secret(template: dict[str, Any]) -> None:
    generate = properties(template, "WebhookSecret")["GenerateSecretString"]
    assert json.loads(generate["SecretStringTemplate"]) == {"previous": ""}
    assert generate["GenerateStringKey"] == "current"
    assert generate["PasswordLength"] == 64
    assert generate["ExcludePunctuation"] is True


def test_outputs(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= {
        "WebhookUrl",
        "WebhookApiUrl",
        "InputBucketName",
        "InputPrefix",
        "IngestQueueUrl",
        "IngestDeadLetterQueueUrl",
        "TasksTableName",
        "WebhookSecretArn",
    }


def test_alarms_notify_the_topic(template: dict[str, Any]) -> None:
    alarms = {
        k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {"IngestDeadLetterQueueAlarm", "WebhookApi5xxAlarm"} <= set(alarms)
    for logical_id in FUNCTIONS:
        assert {f"{logical_id}ErrorsAlarm", f"{logical_id}ThrottlesAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    assert properties(template, "AlarmTopic")["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    assert template["Resources"]["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def test_dashboard_body_is_json(template: dict[str, Any]) -> None:
    body = properties(template, "Dashboard")["DashboardBody"]["Fn::Sub"]
    referenced = set(re.findall(r"\$\{([^}]+)\}", body))
    for name in referenced:
        assert name.startswith("AWS::") or name.split(".")[0] in template["Resources"], name
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    assert len(widgets) >= 4


def test_environment_names_match_runtime_settings(template: dict[str, Any]) -> None:
    """Every variable the template sets is one the code reads, so a rename on either side fails here."""
    # Read by libraries: botocore's retries (in aws_clients), pydantic's plugin switch.
    read = RuntimeSettings.environment_names() | {"AWS_MAX_ATTEMPTS", "PYDANTIC_DISABLE_PLUGINS"}
    for logical_id in FUNCTIONS:
        env = set(function_config(template, logical_id)["Environment"]["Variables"])
        assert env - read - {n for n in env if n.startswith("POWERTOOLS_")} == set(), logical_id


def test_samconfig_carries_what_a_first_deploy_needs(template: dict[str, Any]) -> None:
    """`sam deploy` (and `--config-env prod`) must not need --guided: no question left unanswered."""
    import shlex
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "samconfig.toml").read_text())
    for env in ("default", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert config[env]["global"]["parameters"]["stack_name"]
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert deploy["resolve_s3"] is True
        assert deploy["region"]
        overrides = dict(pair.split("=", 1) for pair in shlex.split(deploy["parameter_overrides"]))
        assert set(overrides) <= set(template["Parameters"]), overrides
        assert (
            overrides["RunwareApiKeySecretName"]
            == template["Parameters"]["RunwareApiKeySecretName"]["Default"]
        )
