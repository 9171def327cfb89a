"""labs stack up · status · down, labs doctor, labs serve: the servers the lab runs on."""
from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from harness.commands.console import err, out
from harness.commands.options import OwnDatabase
from harness.errors import EXIT_STACK, LabsError, unknown

StackOpt = Annotated[str, typer.Option("--stack", help="embedded (default) or docker (docker compose).")]


def _check_kind(kind: str) -> None:
    if kind not in {"embedded", "docker"}:
        raise unknown("stack for `labs stack`", kind, ["embedded", "docker"])


def _print_urls(title: str, urls: dict[str, str]) -> None:
    from harness.stack import redact

    table = Table(title=title, title_justify="left")
    table.add_column("service")
    table.add_column("url")
    for k, v in urls.items():
        table.add_row(k, redact(v))
    out.print(table)


def _print_stack(stack, label: str, seconds: float | None = None) -> None:
    from harness.stack import redact

    table = Table(title=f"{label}" + (f" in {seconds:.1f} s" if seconds else ""), title_justify="left")
    for col in ("service", "version", "url", "pid", "healthy"):
        table.add_column(col)
    for s in stack.services.values():
        table.add_row(s.name, s.version, redact(s.url), str(s.pid), "[green]yes[/green]" if s.healthy() else "[red]no[/red]")
    out.print(table)
    out.print("[dim]passwords hidden; `labs stack env` prints the URLs to connect with (your account only)[/dim]")


def stack_env() -> None:
    """Print the warm stack's URLs, passwords included, as shell exports: eval "$(labs stack env)".

    The servers take only their own password (another local account cannot connect); the state
    file holding it is readable by you alone."""
    import shlex

    from harness.stack import ENV_VARS, embedded

    warm = embedded.read_state()
    if warm is None:
        raise LabsError("no warm stack is running", hint="start one: labs stack up")
    for name, s in warm.services.items():
        if name in ENV_VARS:
            print(f"export {ENV_VARS[name]}={shlex.quote(s.url)}")


def stack_up(stack: StackOpt = "embedded") -> None:
    """Start the stack in the background and keep it (embedded: state in the runtime dir)."""
    from harness.stack import docker
    from harness.stack import stack_up as up

    _check_kind(stack)
    if stack == "docker":
        with err.status("docker compose up -d --wait (data services and the lab app)…"):
            urls = docker.up(with_app=True)
        _print_urls("docker stack", urls)
        return
    with err.status("starting the embedded stack…"):
        t0 = time.perf_counter()
        warm, started = up()
    _print_stack(warm, "started" if started else "already running", time.perf_counter() - t0 if started else None)


def stack_down(stack: StackOpt = "embedded") -> None:
    """Stop the warm stack and delete its data."""
    from harness.stack import docker
    from harness.stack import stack_down as down

    _check_kind(stack)
    if stack == "docker":
        docker.down()
        out.print("docker stack stopped")
        return
    out.print("warm stack stopped" if down() else "no warm stack was running")


def stack_status(stack: StackOpt = "embedded") -> None:
    """Is a warm stack running, and is every service healthy?"""
    from harness.stack import docker, embedded

    _check_kind(stack)
    if stack == "docker":
        reason = docker.available()
        if reason:
            raise LabsError(reason, hint=docker.NO_ENGINE_HINT)
        _print_urls("docker stack", docker.urls())
        return
    warm = embedded.read_state()
    if warm is None:
        out.print("no warm stack (labs run starts a temporary one; `labs stack up` keeps one warm)")
        return
    _print_stack(warm, "warm stack")
    if not all(s.healthy() for s in warm.services.values()):
        err.print("[red]some services are down[/red]: `labs stack down` then `labs stack up`")
        raise typer.Exit(EXIT_STACK)


def doctor() -> None:
    """Is this machine ready for the lab? Python, packages, the embedded stack, disk, ports, binaries."""
    from harness.tools import doctor as doc

    with err.status("checking…"):
        rows = doc.probes()
    table = Table(title="labs doctor", title_justify="left")
    for col in ("check", "", "detail", "what to do"):
        table.add_column(col)
    for r in rows:
        mark = "[green]✓[/green]" if r.ok else ("[red]✗[/red]" if r.required else "[yellow]–[/yellow]")
        table.add_row(r.what, mark, r.detail, r.fix)
    out.print(table)
    ready = doc.ready(rows)
    out.print("[bold green]ready[/bold green]: labs run caching" if ready else
              "[bold red]not ready[/bold red]: fix the ✗ rows above")
    raise typer.Exit(0 if ready else EXIT_STACK)


def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless --allow-remote).")] = "127.0.0.1",
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a non-loopback bind (you asked for it).")] = False,
    stack: Annotated[str, typer.Option(help="embedded or external.")] = "embedded",
    own_database: OwnDatabase = False,
) -> None:
    """Run the lab app with django-silk and the debug toolbar, to click through its endpoints.

    On the current stack, bound to loopback; never used for measurements. Ctrl-C stops it."""
    from harness.session import LabSession
    from harness.tools import serve as srv

    srv.check_bind(host, port, allow_remote)

    def ready(url: str, log, token: str) -> None:
        # the token admits this browser (a cookie); without it every page is 403
        out.print(f"[bold]the lab app with silk and the debug toolbar:[/bold] {url}/?labs-token={token}  "
                  f"· then requests: {url}/silk/  · log {log} (removed on exit)  · Ctrl-C to stop",
                  soft_wrap=True, highlight=False)
    err.print(f"[dim]starting the {stack} stack…[/dim]")
    try:
        with LabSession(stack=stack, claim_database=own_database) as session:
            srv.serve(session, host, port, ready)
    except KeyboardInterrupt:
        err.print("stopped")
        raise typer.Exit(0) from None


def register(app: typer.Typer) -> None:
    stack = typer.Typer(help="Keep a warm stack between runs (skips boot and seeding).", no_args_is_help=True)
    stack.command("up")(stack_up)
    stack.command("down")(stack_down)
    stack.command("status")(stack_status)
    stack.command("env")(stack_env)
    app.add_typer(stack, name="stack")
    app.command("doctor")(doctor)
    app.command("serve")(serve)
