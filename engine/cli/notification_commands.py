"""``crm reminders``, ``crm worker``, ``crm jobs``, ``crm outbox``: reminders and their delivery.

See docs/reminders.md.  ``crm worker`` runs until interrupted (or once with
``--once``, for cron and tests); ``crm jobs`` says when each job last ran
and what failed; ``crm outbox`` shows messages with their state and
reason, and ``crm outbox retry ID`` sends an uncertain or failed one again.
"""

from __future__ import annotations

import signal
import threading

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.output import table
from engine.cli.record_commands import as_option, cli_actor, json_option
from engine.cli.site_commands import open_site
from engine.jobs.backups import last_backup
from engine.jobs.runner import scheduled_jobs
from engine.metadata.durations import format_duration
from engine.notifications.follow import run_following_definitions
from engine.notifications.inbox import InboxService, OutboxAdmin
from engine.notifications.jobs import JobLog
from engine.notifications.reminders import ReminderScheduler
from engine.notifications.settings import read_settings
from engine.notifications.worker import NotificationWorker
from engine.site import Site


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else "-"


@click.group("reminders")
def reminders() -> None:
    """Reminder rules: list them, preview one on a record."""


@reminders.command("list")
@json_option
@click.pass_context
@report_errors
def list_rules(ctx: click.Context, as_json: bool) -> None:
    """The site's reminder rules."""
    with open_site(ctx, require_migrated=False) as site:
        rules = list(site.registry.reminders.values())
        if as_json:
            echo_json([{"name": r.name, "entity": r.entity, "schedule": r.schedule,
                        "channels": list(r.channels), "enabled": r.enabled,
                        "to": [x.source for x in r.recipients]} for r in rules])
            return
        rows = [[r.name, r.entity, r.schedule, ", ".join(r.channels),
                 ", ".join(x.source for x in r.recipients), "yes" if r.enabled else "no"]
                for r in rules]
        for line in table(["RULE", "ENTITY", "SCHEDULE", "CHANNELS", "TO", "ENABLED"], rows):
            click.echo(line)


@reminders.command("preview")
@click.argument("rule")
@click.argument("record_id")
@as_option
@json_option
@click.pass_context
@report_errors
def preview(ctx: click.Context, rule: str, record_id: str, login: str | None,
            as_json: bool) -> None:
    """What RULE would send about RECORD_ID, in both languages (nothing is sent)."""
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        scheduler = ReminderScheduler(site.records, site.pipeline, clock=site.clock,
                                      locale=site.config.locale, timezone=site.config.timezone)
        found = scheduler.preview(actor, rule, record_id)
        if as_json:
            echo_json(found)
            return
        condition = {None: "none", True: "holds", False: "does not hold (nothing would be sent)"}
        click.echo(f"Reminder {found['rule']} on {found['entity']} {found['record_id']}")
        click.echo(f"Condition: {condition[found['condition']]}")
        click.echo(f"Due: {_when(found['due'])} UTC")
        for item in found["messages"]:
            note = f"  (skipped: {item['refused']})" if item["refused"] else ""
            click.echo(f"  → {item['recipient']} by {item['channel']}{note}")
        if not found["messages"]:
            click.echo("  → nobody (no recipient resolves to a user or an address)")
        for language, text in found["texts"].items():
            click.echo(f"[{language}]")
            if text["subject"]:
                click.echo(f"  Subject: {text['subject']}")
            for line in text["body"].splitlines():
                click.echo(f"  {line}")


@click.command("worker")
@click.option("--once", is_flag=True, help="Run each job once and exit (for cron and tests).")
@click.option("--poll", default=5.0, show_default=True, type=float,
              help="Seconds between looks at the outbox.")
@click.pass_context
@report_errors
def worker(ctx: click.Context, once: bool, poll: float) -> None:
    """Run the reminder scheduler and deliver the outbox (in-app, e-mail, SMS)."""
    with open_site(ctx) as site:
        runner = NotificationWorker(site)
        if once:
            echo_json(runner.run_once())
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        mode = "with Redis" if runner.settings.redis_url else "alone (no Redis configured)"
        click.echo(f"Worker {runner.name} running {mode}; Ctrl+C to stop.")

        def make_worker(current: Site, generation: threading.Event) -> NotificationWorker:
            """The first worker, then a new one each time the definitions were reloaded."""
            made = runner if current is site else NotificationWorker(current)
            if hasattr(made.coordinator, "stop"):
                made.coordinator.stop = generation
            return made

        # after `crm migrate` elsewhere, reload the definitions instead of failing every job
        run_following_definitions(site, stop, make_worker, poll=poll)
        click.echo("Worker stopped.")


@click.command("jobs")
@json_option
@click.pass_context
@report_errors
def jobs(ctx: click.Context, as_json: bool) -> None:
    """The background jobs: last run, its state, failures in the last 24 hours."""
    with open_site(ctx) as site:
        planned = scheduled_jobs(site)
        found = JobLog(site.schema, site.engine, site.clock, "cli").overview(
            site.config.locale, {name: job.description for name, job in planned.items()})
        if as_json:
            echo_json([s.__dict__ for s in found])
            return
        settings = read_settings(site.config.notifications)
        schedule = {"reminders": f"every {format_duration(settings.scan_every)}",
                    "delivery": "every poll (crm worker --poll)",
                    "digest": f"daily from {settings.digest_at.strftime('%H:%M')}",
                    **{name: job.schedule.describe() for name, job in planned.items()}}
        rows = [[s.job, schedule.get(s.job, ""), _when(s.last_started), s.last_status or "never run",
                 _when(s.last_ok), str(s.failures_24h), s.description] for s in found]
        for line in table(["JOB", "SCHEDULE", "LAST RUN", "STATE", "LAST OK", "FAILED (24H)",
                           "WHAT"], rows):
            click.echo(line)
        for s in found:
            if s.last_error:
                click.echo(f"Last error of {s.job}: {s.last_error}")
        backup = last_backup(site)
        if backup is not None:
            click.echo(f"Last backup: {_when(backup.finished_at)}, {backup.size} bytes, "
                       f"{backup.file}{'' if backup.exists else ' (file no longer there)'}")


@click.group("outbox", invoke_without_command=True)
@click.option("--status", help="Only messages in this state (pending, sent, failed, uncertain...).")
@click.option("--limit", default=30, show_default=True, type=int)
@as_option
@json_option
@click.pass_context
@report_errors
def outbox(ctx: click.Context, status: str | None, limit: int, login: str | None,
           as_json: bool) -> None:
    """Messages waiting, sent, failed or skipped, newest first, with the reason."""
    if ctx.invoked_subcommand is not None:
        return
    with open_site(ctx) as site:
        admin = OutboxAdmin(site.schema, site.engine, site.clock)
        actor = cli_actor(site, login)
        rows = admin.messages(actor, status=status, limit=limit)
        if as_json:
            echo_json({"counts": admin.counts(actor), "messages": rows})
            return
        counts = admin.counts(actor)
        click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "The outbox is empty.")
        lines = [[str(r["id"]), r["status"], r["channel"], r["recipient"], r["source"],
                  f"{r['entity'] or ''} {r['record_id'] or ''}".strip(), str(r["attempts"]),
                  (r["reason"] or "")[:60]] for r in rows]
        for line in table(["ID", "STATE", "CHANNEL", "TO", "FROM", "RECORD", "TRIES", "REASON"],
                          lines):
            click.echo(line)


@outbox.command("retry")
@click.argument("message_id", type=int)
@as_option
@click.pass_context
@report_errors
def retry(ctx: click.Context, message_id: int, login: str | None) -> None:
    """Send an uncertain or failed message again (check the mail server's log first)."""
    with open_site(ctx) as site:
        OutboxAdmin(site.schema, site.engine, site.clock).retry(cli_actor(site, login), message_id)
        click.echo(f"Message {message_id} will be sent again by the next worker run.")


@click.command("digest")
@click.argument("login")
@click.argument("choice", type=click.Choice(["on", "off"]))
@click.pass_context
@report_errors
def digest(ctx: click.Context, login: str, choice: str) -> None:
    """Whether LOGIN's e-mail reminders come as one daily digest."""
    with open_site(ctx) as site:
        InboxService(site.schema, site.engine, site.clock).set_digest(
            site.users.actor(login), choice == "on")
        click.echo(f"Daily digest {choice} for {login}.")


def register(group: click.Group) -> None:
    for command in (reminders, worker, jobs, outbox, digest):
        group.add_command(command)
