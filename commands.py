"""Command-line interface: `flask --app app users create|points|activity|seed-demo|worker|jobs`."""
from __future__ import annotations

import secrets
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from models import Community, DomainError, Partner, User, db
from models.accounts import Role, grant_role, normalise_login
from models.activity import backfill
from models.communities import verify_member_counts
from models.loyalty import adjust, balance_of, recache_standings, verify_ledger
from models.outbox import JobRow, registered, retry_failed
from models.stories import verify_story_counts
from models.types import utcnow
from services.jobs import run_worker

users_cli = AppGroup("users", help="Manage accounts.")


@users_cli.command("create")
@click.argument("login")
@click.option("--password", required=True, help="The account's password.")
@click.option("--nickname", default=None, help="Display name (defaults to the login's first part).")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None, help="A role besides member.")
@click.option("--community", "community_slug", default=None, help="Community slug, for organizer and moderator.")
@click.option("--partner", "partner_name", default=None, help="Partner business, for partner staff (created if new).")
def create_user(login, password, nickname, role, community_slug, partner_name):
    """Create an account whose LOGIN is an e-mail address or a mainland mobile number."""
    try:
        kind, value = normalise_login(login)
    except DomainError as error:
        raise click.BadParameter(error.message, param_hint="LOGIN") from None
    if User.login_taken(kind, value):
        raise click.ClickException(f"an account with login {value} already exists")
    community = partner = None
    if role in ("organizer", "moderator"):
        if not community_slug:
            raise click.UsageError(f"--role {role} needs --community SLUG")
        community = db.session.scalar(db.select(Community).where(Community.slug == community_slug))
        if community is None:
            raise click.BadParameter(f"no community {community_slug!r}", param_hint="--community")
    if role == "partner":
        if not partner_name:
            raise click.UsageError("--role partner needs --partner NAME")
        partner = Partner.get_or_create(partner_name)
    user = User(
        nickname=(nickname or value.split("@")[0])[:20],
        consent_version=current_app.config["PRIVACY_POLICY_VERSION"],
        consent_at=utcnow(),
        **{kind: value},
    )
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    if role:
        grant_role(user, role, community=community, partner=partner)
    db.session.commit()
    click.echo(f"created {value}" + (f" as {role}" if role else ""))


points_cli = AppGroup("points", help="The points ledger.")


@points_cli.command("grant")
@click.argument("login")
@click.argument("amount", type=int)
@click.option("--reason", required=True, help="Why (kept in the ledger and the audit log).")
def grant_points(login, amount, reason):
    """Adjust LOGIN's points by AMOUNT (negative to take back; never below zero)."""
    member = User.find_by_login(login)
    if member is None:
        raise click.ClickException(f"no account with login {login}")
    try:
        adjust(member, amount, reason, actor=None, key=f"cli:{secrets.token_hex(8)}")
    except DomainError as error:
        raise click.ClickException(error.message % error.params) from None
    db.session.commit()
    click.echo(f"{login}: {amount:+d} points, balance {balance_of(member)}")


@points_cli.command("verify")
def verify_points():
    """Recompute every balance from the ledger, and every cached standing (member_points) from
    its member's postings, and report any mismatch (exit 1 if there is one)."""
    members, postings, problems = verify_ledger()
    for problem in problems:
        click.echo(problem)
    click.echo(f"checked {members} members and {postings} postings: {len(problems)} mismatches")
    if problems:
        sys.exit(1)


@points_cli.command("recache")
def recache_points():
    """Rebuild every member's cached standing (balance, level, expiring points) from the ledger:
    after postings were inserted around the app (bulk loads), or to repair what verify reports."""
    written = recache_standings()
    db.session.commit()
    click.echo(f"{written} standings rebuilt from the ledger")


communities_cli = AppGroup("communities", help="Communities (models/communities.py).")


@communities_cli.command("verify")
def verify_communities():
    """Check each community's member counter against its memberships (exit 1 on a mismatch)."""
    problems = verify_member_counts()
    for problem in problems:
        click.echo(problem)
    click.echo(f"member counters: {len(problems)} mismatches")
    if problems:
        sys.exit(1)


stories_cli = AppGroup("stories", help="Stories (models/stories.py).")


@stories_cli.command("verify")
def verify_stories():
    """Check every story's kept like and comment counts against the rows (exit 1 on a mismatch)."""
    wrong, lines = verify_story_counts()
    for line in lines:
        click.echo(line)
    click.echo(f"story counts: {wrong} mismatches")
    if wrong:
        sys.exit(1)


activity_cli = AppGroup("activity", help="Members' active days (models/activity.py).")


@activity_cli.command("backfill")
def backfill_activity():
    """Record members' active days from what they did before the record existed (sign-ups,
    stories, comments, likes, registrations, check-ins, their own ledger entries). Safe to run
    again: days already recorded are kept, nothing is counted twice."""
    added, moved = backfill()
    db.session.commit()
    click.echo(f"{added} active days added, last active day moved for {moved} members")


@click.command("seed-demo")
def seed_demo():
    """Fill an empty database with Chinese demo content (safe to run again)."""
    from demo import seed  # the demo content is loaded only by this command

    created = seed()
    click.echo("demo data created" if created else "demo data already present")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run what is queued, then exit.")
def worker(burst):
    """Run the job outbox (through RQ with REDIS_URL) and enqueue periodic jobs; any number may run."""
    app: Flask = current_app._get_current_object()
    mode = app.config.get("JOBS_MODE")
    click.echo(f"cheyou worker: jobs mode {mode}", err=True)
    sys.stdout.flush()
    run_worker(app, burst=burst)


jobs_cli = AppGroup("jobs", help="The job outbox (models/outbox.py, run by services/jobs.py).")


@jobs_cli.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "done", "failed"]), default=None,
              help="Only rows in this state (default: all but done).")
@click.option("--limit", type=int, default=50, show_default=True)
def list_jobs(status, limit):
    """Show outbox rows, newest first: id, state, attempts, when due, name and last error."""
    query = db.select(JobRow).order_by(JobRow.id.desc()).limit(limit)
    query = query.where(JobRow.status == status) if status else query.where(JobRow.status != "done")
    for row in db.session.scalars(query):
        error = (row.last_error or "").strip().splitlines()[-1:] or [""]
        lease = f" lease {row.locked_until:%Y-%m-%d %H:%M:%S} {row.locked_by}" if row.status == "running" else ""
        click.echo(f"{row.id}\t{row.status}\t{row.attempts}/{row.max_attempts}\t{row.run_at:%Y-%m-%d %H:%M:%S}Z"
                   f"\t{row.name}{tuple(row.args)}{lease}\t{error[0][:200]}")


@jobs_cli.command("retry")
@click.argument("row_id", type=int)
def retry_job(row_id):
    """Queue failed job ROW_ID again now, with a fresh set of attempts."""
    row = db.session.get(JobRow, row_id)
    if row is None:
        raise click.ClickException(f"no job row {row_id}")
    job = registered(row.name)
    if job is not None and job.sensitive:
        raise click.ClickException(f"job row {row_id} ({row.name}) had its arguments cleared: it cannot run again")
    if not retry_failed(db.session, row_id):
        raise click.ClickException(f"job row {row_id} is {row.status}, not failed")
    db.session.commit()
    click.echo(f"job row {row_id} queued again")


def register(app: Flask) -> None:
    app.cli.add_command(jobs_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(points_cli)
    app.cli.add_command(activity_cli)
    app.cli.add_command(communities_cli)
    app.cli.add_command(stories_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(worker)
