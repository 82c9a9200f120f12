"""The ``crm`` command: one group, sub-commands in their own modules.

Errors raised by the engine carry messages written for users; this module
prints them (with every definition problem on its own line) and exits
non-zero, instead of showing a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from engine import __version__
from engine.errors import CrmError, DefinitionError
from engine.metadata.values import to_json

F = TypeVar("F", bound=Callable[..., Any])


def report_errors(func: F) -> F:
    """Turn engine errors into readable output and exit code 1 (2 for bad definitions)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DefinitionError as exc:
            errors = [p for p in exc.problems if p.severity == "error"]
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            click.echo(f"{len(errors)} problem(s) found.", err=True)
            sys.exit(2)
        except CrmError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            errors = getattr(exc, "errors", None)
            if errors:
                for field, messages in errors.items():
                    for text in messages:
                        click.echo(f"  {field}: {text}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(to_json(data), ensure_ascii=False, indent=2, sort_keys=False))


@click.group()
@click.version_option(__version__, prog_name="VisionCRM")
@click.option(
    "--site",
    "site_dir",
    envvar="CRM_SITE",
    type=click.Path(file_okay=False),
    help="The site folder (default: $CRM_SITE, else the current folder or a parent).",
)
@click.pass_context
def main(ctx: click.Context, site_dir: str | None) -> None:
    """VisionCRM: a CRM configured in YAML, shaped by packs for each sales model."""
    ctx.ensure_object(dict)
    ctx.obj["site_dir"] = site_dir


def _register() -> None:
    from engine.cli import (
        attachment_commands,
        backup_commands,
        config_commands,
        demo_commands,
        installation_commands,
        merge_commands,
        notification_commands,
        pack_commands,
        print_commands,
        record_commands,
        report_commands,
        site_commands,
        transfer_io_commands,
        transition_commands,
        user_commands,
        web_commands,
    )

    for module in (attachment_commands, print_commands, backup_commands, installation_commands, site_commands, record_commands, transition_commands, user_commands,
                   demo_commands, web_commands, merge_commands, report_commands,
                   pack_commands, transfer_io_commands, notification_commands,
                   config_commands):
        module.register(main)


_register()
