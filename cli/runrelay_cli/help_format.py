"""`--help` that shows a boolean flag as a flag (typer labels every option with its type: `<bool>`)."""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup


def _bare_flags(command: Any, ctx: Any) -> None:
    help_option = command.get_help_option(ctx)
    for param in [*command.params, help_option]:
        if param is not None and getattr(param, "is_flag", False):
            param.metavar = ""  # typer prints the metavar in the type column when one is set


class FlagCommand(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _bare_flags(self, ctx)
        super().format_help(ctx, formatter)


class FlagGroup(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _bare_flags(self, ctx)
        super().format_help(ctx, formatter)
