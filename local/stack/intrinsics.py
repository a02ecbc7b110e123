"""CloudFormation intrinsic functions, resolved against a local stack's parameters and resources.

The template is the single source of truth for names, settings and environment variables; this
module turns `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If` ... into the values the local stack uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account: ARNs must agree with what moto builds

# Fn::Sub placeholder: ${Name}, ${Resource.Attribute}, ${!Literal}
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix} names an API Gateway endpoint; locally
# that endpoint is the shim's loopback URL.
_EXECUTE_API_URL = re.compile(
    r"https?://\$\{(?P<api>[A-Za-z0-9]+)\}\.execute-api\.(?:\$\{AWS::Region\}|[a-z0-9-]+)"
    r"\.(?:\$\{AWS::URLSuffix\}|amazonaws\.com)"
)


class TemplateError(ValueError):
    """The template asks for something the local stack cannot resolve."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


@dataclass(frozen=True)
class PhysicalResource:
    """What `Ref` and `Fn::GetAtt` yield for one provisioned (or stood-in) resource."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


def pseudo_parameters(stack_name: str, region: str, account_id: str = ACCOUNT_ID) -> dict[str, str]:
    return {
        "AWS::AccountId": account_id,
        "AWS::Region": region,
        "AWS::StackName": stack_name,
        "AWS::StackId": (
            f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/"
            "00000000-0000-4000-8000-000000000000"
        ),
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }


def parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every template parameter's value: the override if given, else the default; checked like CFN."""
    overrides = dict(overrides or {})
    declared: Mapping[str, Mapping[str, Any]] = template.get("Parameters") or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = str(overrides[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no default and no override")
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            raise TemplateError(f"parameter {name}={value!r} is not one of {list(allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            raise TemplateError(f"parameter {name}={value!r} does not match {pattern!r}")
        values[name] = value
    return values


class IntrinsicResolver:
    """Resolves intrinsic functions; `resources` may grow while provisioning runs."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, str],
        resources: Mapping[str, PhysicalResource],
        pseudo: Mapping[str, str],
        api_base_urls: Mapping[str, str] | None = None,
    ) -> None:
        self._template = template
        self._parameters = parameters
        self._resources = resources
        self._pseudo = pseudo
        self._api_base_urls = api_base_urls or {}
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Fn::Sub": self._sub,
            "Fn::GetAtt": self._get_att,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda args: not self.condition_value(args[0]),
            "Fn::And": lambda args: all(self.condition_value(a) for a in args),
            "Fn::Or": lambda args: any(self.condition_value(a) for a in args),
            "Condition": self.condition,
        }

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic replaced; `AWS::NoValue` entries are dropped."""
        if isinstance(value, Mapping):
            if len(value) == 1:
                (key, argument), *_ = value.items()
                if key in self._functions:
                    return self._functions[key](argument)
                if key.startswith("Fn::"):
                    raise TemplateError(f"{key} is not supported by the local stack")
            resolved = {str(k): self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        return value

    def resolve_str(self, value: Any) -> str:
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, (str, int, float)):
            return str(resolved)
        raise TemplateError(f"expected a scalar, got {resolved!r}")

    def condition(self, name: str) -> bool:
        conditions = self._template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"unknown condition {name}")
        return self.condition_value(conditions[name])

    def condition_value(self, value: Any) -> bool:
        resolved = self.resolve(value)
        if not isinstance(resolved, bool):
            raise TemplateError(f"condition did not evaluate to a boolean: {value!r}")
        return resolved

    # ------------------------------------------------------------------ functions
    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._resources:
            return self._resources[name].ref
        raise TemplateError(f"Ref to unknown or not yet provisioned {name!r}")

    def _get_att(self, argument: Any) -> str:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        else:
            logical_id, attribute = argument[0], self.resolve_str(argument[1])
        resource = self._resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"GetAtt on unknown or not yet provisioned {logical_id!r}")
        if attribute not in resource.attributes:
            raise TemplateError(f"{logical_id} has no attribute {attribute!r} locally")
        return resource.attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve_str(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}
        text = _EXECUTE_API_URL.sub(self._local_api_url, text)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name)
            return self.resolve_str({"Ref": name})

        return _PLACEHOLDER.sub(replace, text)

    def _local_api_url(self, match: re.Match[str]) -> str:
        api = match.group("api")
        if api not in self._api_base_urls:
            raise TemplateError(f"no local endpoint for API {api}")
        return self._api_base_urls[api].rstrip("/")

    def _join(self, argument: list[Any]) -> str:
        delimiter, items = argument
        return str(delimiter).join(self.resolve_str(item) for item in self.resolve(items))

    def _select(self, argument: list[Any]) -> Any:
        index, items = int(self.resolve_str(argument[0])), self.resolve(argument[1])
        return items[index]

    def _split(self, argument: list[Any]) -> list[str]:
        delimiter, text = argument
        return self.resolve_str(text).split(delimiter)

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _find_in_map(self, argument: list[Any]) -> Any:
        map_name, top, second = (self.resolve_str(a) for a in argument[:3])
        try:
            return self.resolve(self._template["Mappings"][map_name][top][second])
        except KeyError as missing:
            raise TemplateError(f"FindInMap {map_name}/{top}/{second}: {missing} not found") from None

    def _equals(self, argument: list[Any]) -> bool:
        left, right = (self.resolve(a) for a in argument)
        return str(left) == str(right)
