"""`labs`: the command line. Turns flags into plain options and calls plain functions.

Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 stack error, 130 interrupted.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import interrupts, registry, report, store
from harness.errors import (EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK, LabsError, UsageError, unknown)
from harness.scenario import PROFILES

app = typer.Typer(
    help="Perf Lab: reproducible, verified performance experiments for Django on a real stack.\n\n"
         "Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 stack error, 130 interrupted.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stack_app = typer.Typer(help="Keep a warm stack between runs (skips boot and seeding).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
asv_app = typer.Typer(help="asv history: record a range of commits, publish the site.", no_args_is_help=True)
app.add_typer(asv_app, name="asv")

# Piped output (CI logs, files) gets a readable width instead of rich's 80-column fallback.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)


def _fail(exc: LabsError) -> None:
    err.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
    if exc.hint:
        err.print(f"[yellow]hint:[/yellow] {exc.hint}", highlight=False)
    raise typer.Exit(exc.exit_code)


_TOLD = False  # the user has already been told the run was interrupted


def _say_interrupted(text: str = "") -> int:
    global _TOLD
    err.print("[bold red]interrupted[/bold red]" + (f": {text}" if text else ""))
    _TOLD = True
    return EXIT_INTERRUPTED


@app.command("list")
def list_cmd(
    stack: Annotated[str, typer.Option(help="Stack to check availability against.")] = "embedded",
) -> None:
    """List scenarios: name, title, what they need, and whether this stack can run them."""
    from harness.stack import embedded, provider

    try:
        prov = provider(stack)
        reason = prov.available()
        from harness.stack import startable

        have = {"postgres", "redis", *startable()} if stack == "embedded" else {
            c for c, v in (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL"), ("memcached", "MEMCACHED_URL"),
                           ("pgbouncer", "PGBOUNCER_URL")) if os.environ.get(v)}
        if stack == "embedded" and embedded.memcached_binary() is not None:
            have.add("memcached")
        table = Table(title=f"scenarios ({stack} stack)", title_justify="left")
        for col in ("name", "title", "needs", "optional", "available", "from"):
            table.add_column(col)
        broken = []
        for name in registry.names():
            try:
                sc = registry.get(name)
            except registry.ScenarioLoadError as exc:
                broken.append(exc)
                table.add_row(name, "[red]cannot load[/red]", "", "", f"[red]{exc.message}[/red]",
                              registry.origin(name))
                continue
            missing = sorted(sc.requires - have)
            avail = f"[red]no: {reason}[/red]" if reason else (
                f"[red]no: needs {', '.join(missing)}[/red]" if missing else "[green]yes[/green]")
            opt_missing = sorted(sc.optional - have)
            if not reason and not missing and opt_missing:
                avail += f" [yellow](without {', '.join(opt_missing)})[/yellow]"
            origin_text = registry.origin(name)
            table.add_row(name, sc.title, ", ".join(sorted(sc.requires)), ", ".join(sorted(sc.optional)) or "—", avail,
                          origin_text if origin_text == "built-in" else os.path.relpath(origin_text)
                          if os.path.exists(origin_text) else origin_text)
        out.print(table)
        for problem in registry.registry().problems:
            err.print(f"[yellow]warning:[/yellow] {problem}", highlight=False)
    except LabsError as exc:
        _fail(exc)


def _parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"bad --param {item!r}: expected NAME=VALUE, e.g. --param books=10,100")
        params[key.strip()] = value.strip()
    return params


@app.command()
def run(
    scenarios: Annotated[list[str], typer.Argument(help="Scenario names, or 'all'.", show_default=False)],
    profile: Annotated[str, typer.Option("--profile", "-p", help="quick (seconds) or full (nightly).")] = "quick",
    variants: Annotated[Optional[str], typer.Option(help="Comma-separated variants to run (the baseline always runs).")] = None,
    stack: Annotated[str, typer.Option(help="embedded (default: starts its own servers), external "
                                            "(DATABASE_URL, REDIS_URL...) or docker (docker compose).")] = "embedded",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result JSON instead of the table.")] = False,
    results_dir: Annotated[Path, typer.Option(help="Where result files go.")] = Path("results"),
    seed: Annotated[int, typer.Option(help="Seed of the generated data and workloads.", min=0)] = 42,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Override a scenario parameter: NAME=VALUE.")] = None,
    no_lesson: Annotated[bool, typer.Option("--no-lesson", help="Do not print the lesson text.")] = False,
    no_chart: Annotated[bool, typer.Option("--no-chart", help="Do not write the PNG chart beside the result.")] = False,
    django_settings: Annotated[Optional[str], typer.Option(
        help="Measure your own Django project: its settings module (default: django_settings in labs.toml).")] = None,
) -> None:
    """Run scenarios: verify every variant, time them in interleaved rounds, save and show the result."""
    from harness.runner import RunOptions

    try:
        django_settings = django_settings or registry.registry().config.django_settings
        if profile not in PROFILES:
            raise unknown("profile", profile, PROFILES)
        chosen = registry.resolve(scenarios)
        wanted = tuple(v.strip() for v in (variants or "").split(",") if v.strip())
        params = _parse_params(param or [])
        for sc in chosen:  # validate everything before any server starts
            sc.params_for(profile, {k: v for k, v in params.items() if k in sc.profiles[profile]})
        if params:
            unknown_params = [k for k in params if not any(k in sc.profiles[profile] for sc in chosen)]
            if unknown_params:
                takes = "; ".join(f"{sc.name}: {', '.join(sorted(sc.profiles[profile]))}" for sc in chosen)
                raise UsageError(f"no scenario here has parameter {unknown_params[0]!r} (parameters — {takes})")
        if wanted:
            known = {v for sc in chosen for v in sc.variant_names(profile)}
            for name in wanted:
                if name not in known:
                    raise unknown("variant", name, known)
        for problem in registry.registry().problems:
            err.print(f"[yellow]warning:[/yellow] {problem}", highlight=False)
        opts = RunOptions(tuple(sc.name for sc in chosen), profile, wanted, stack, str(results_dir), seed, params,
                          django_settings=django_settings)
        code, _ = _run(chosen, opts, json_out, not no_lesson, chart=not no_chart)
    except LabsError as exc:
        _fail(exc)
    raise typer.Exit(code)


def _run(chosen, opts, json_out: bool, show_lesson: bool, chart: bool = True,
         then=None) -> tuple[int, list]:
    """Run scenarios on one stack; returns (exit code, [(result, path)]).

    `then(ran, rerun)`, when given, is called on the same stack after the runs: `rerun(names)`
    measures those scenarios again (Django can be configured for one stack per process)."""
    from dataclasses import replace

    from harness import djangoenv, envinfo
    from harness.runner import ProgressEvent, run_scenario
    from harness.stack import provider

    prov = provider(opts.stack)
    results_dir = Path(opts.results_dir)
    code = EXIT_OK
    printed = []
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=err, transient=True, disable=not err.is_terminal)
    try:
        with progress:
            boot = progress.add_task(f"starting the {opts.stack} stack…", total=None)
            t0 = time.perf_counter()
            with prov.open() as info:
                interrupts.check()
                stack_s = time.perf_counter() - t0
                progress.update(boot, description="migrating…")
                djangoenv.setup(info, opts.django_settings)
                describe = info.describe()
                describe["versions"] = {**describe["versions"], **djangoenv.database_versions()}
                env = envinfo.collect(describe)
                if opts.django_settings:
                    env["django_settings"] = opts.django_settings  # a user's project, not the lab's
                progress.remove_task(boot)

                def run_some(scenarios) -> list:
                    nonlocal code
                    done = []
                    for sc in scenarios:
                        result, path = _one(sc)
                        done.append((result, path, sc))
                        if not result.ok:
                            code = EXIT_CHECK_FAILED
                    return done

                def _one(sc):
                    task = progress.add_task(sc.name, total=1.0)

                    def show(ev: ProgressEvent, task=task) -> None:
                        done = (ev.case_index + ev.fraction) / ev.cases if ev.cases else 0.0
                        label = {"seed": "seeding", "verify": "verifying", "measure": "measuring",
                                 "done": "done"}[ev.phase]
                        progress.update(task, completed=1.0 if ev.phase == "done" else done,
                                        description=f"{ev.scenario} · {ev.case or ''} {label}")

                    sc_opts = replace(opts, params={k: v for k, v in opts.params.items() if k in sc.profiles[opts.profile]},
                                      variants=tuple(v for v in opts.variants if v in sc.variant_names(opts.profile)))
                    result = run_scenario(sc, sc_opts, info, progress=show, env=env,
                                          on_partial=lambda r: _save_partial(r, results_dir))
                    result = replace(result, timings={"stack_s": stack_s if not info.warm else 0.0, **result.timings})
                    path = store.save(result, results_dir)
                    progress.remove_task(task)
                    return result, path

                printed = run_some(chosen)
                if then is not None:
                    then([(r, p) for r, p, _ in printed],
                         lambda names: [(r, p) for r, p, _ in run_some([registry.get(n) for n in names])])
    except KeyboardInterrupt:
        return _say_interrupted("every service this run started was stopped; "
                                "the partial result is saved marked incomplete."), []
    for result, path, sc in printed:
        png = _chart(result, path) if chart else None
        if json_out:
            out.print_json(json.dumps(store.to_dict(result), default=str))
        else:
            report.terminal(result, out, lesson_text=sc.lesson_text() if show_lesson else "")
            out.print(f"[dim]saved {path}" + (f" · chart {png}" if png else "") + "[/dim]")
    return code, [(result, path) for result, path, _ in printed]


def _chart(result, path: Path) -> Path | None:
    """The run's chart beside its JSON; a chart failure never loses the (already saved) result."""
    from harness import charts

    try:
        return charts.result_png(result, path.with_suffix(".png"))
    except Exception as exc:  # noqa: BLE001 - a missing font or backend must not fail the run
        err.print(f"[yellow]no chart: {exc!r}[/yellow]")
        return None


def _save_partial(result, results_dir: Path) -> None:
    path = store.save(result, results_dir)
    err.print(f"[yellow]partial result saved (complete: false) to {path}[/yellow]")


@app.command()
def show(
    run_ref: Annotated[str, typer.Argument(metavar="RUN_ID|latest|previous|FILE", help="Which run.")] = "latest",
    results_dir: Annotated[Path, typer.Option(help="Where result files are.")] = Path("results"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the stored JSON.")] = False,
) -> None:
    """Show a stored result as a table (or JSON)."""
    try:
        path = store.resolve(run_ref, results_dir)
        result = store.load(path)
    except LabsError as exc:
        _fail(exc)
    if json_out:
        out.print_json(json.dumps(store.to_dict(result), default=str))
    else:
        report.terminal(result, out)
        out.print(f"[dim]{path}[/dim]")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_CHECK_FAILED)


StackOpt = Annotated[str, typer.Option("--stack", help="embedded (default) or docker (docker compose).")]


def _docker_stack(action: str) -> None:
    from harness.stack import docker

    if action == "up":
        with err.status("docker compose up -d --wait…"):
            urls = docker.up()
        table = Table(title="docker stack", title_justify="left")
        table.add_column("service")
        table.add_column("url")
        for k, v in urls.items():
            from harness.stack import redact

            table.add_row(k, redact(v))
        out.print(table)
    elif action == "down":
        docker.down()
        out.print("docker stack stopped")
    else:
        reason = docker.available()
        if reason:
            raise LabsError(reason, hint=docker.NO_ENGINE_HINT)
        out.print(docker.urls())


def _check_stack_kind(kind: str) -> None:
    if kind not in {"embedded", "docker"}:
        raise unknown("stack for `labs stack`", kind, ["embedded", "docker"])


@app.command("report")
def report_cmd(
    run_ref: Annotated[str, typer.Argument(metavar="RUN_ID|latest|previous|FILE", help="Which run.")] = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="html (self-contained), md or png.")] = "html",
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write (default: beside the result).")] = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open it in the default browser/viewer.")] = False,
    results_dir: Annotated[Path, typer.Option(help="Where result files are.")] = Path("results"),
) -> None:
    """Write a report of a run: HTML with charts (offline, no CDN), Markdown, or PNG."""
    from harness import charts, htmlreport

    try:
        if fmt not in {"html", "md", "png"}:
            raise unknown("format", fmt, ["html", "md", "png"])
        path = store.resolve(run_ref, results_dir)
        result = store.load(path)
        target = output or path.with_suffix({"html": ".html", "md": ".md", "png": ".png"}[fmt])
        try:
            lesson = registry.get(result.scenario).lesson_text()
        except LabsError:
            lesson = ""
        if fmt == "png":
            charts.result_png(result, target)
        elif fmt == "md":
            target.write_text(htmlreport.to_markdown(result))
        else:
            target.write_text(htmlreport.to_html(result, lesson))
    except LabsError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(LabsError(f"cannot write {target}: {exc.strerror or exc}"))
    out.print(str(target))
    if open_it:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())


def _on_stack(scenario_name: str, stack: str, profile: str, params: list[str] | None, fn,
              variant: str | None = None, case: str | None = None):
    """Validate names, then open the stack, configure Django, seed the scenario and call
    fn(scenario, opts, info, artifacts)."""
    from harness import djangoenv
    from harness.runner import RunOptions, new_run_id
    from harness.scenario import Context
    from harness.stack import provider

    if profile not in PROFILES:
        raise unknown("profile", profile, PROFILES)
    sc = registry.get(scenario_name)
    overrides = _parse_params(params or [])
    sc.params_for(profile, overrides)
    opts = RunOptions((sc.name,), profile, (), stack, "results", 42, overrides)
    from harness import diagnose

    if not list(diagnose.pick(sc, opts, variant, case)):  # bad names fail here, before any server starts
        raise UsageError(f"variant {variant!r} is not in case {case!r} of {sc.name}")
    with err.status(f"starting the {stack} stack and seeding {sc.name}…"), provider(stack).open() as info:
        djangoenv.setup(info)
        artifacts = Path("results") / new_run_id(f"{sc.name}-diagnose")
        if sc.setup is not None:
            sc.setup(Context(sc.params_for(profile, overrides), 42, profile, info.components, artifacts=artifacts))
        try:
            return fn(sc, opts, info, artifacts)
        finally:
            if sc.teardown is not None:
                sc.teardown()


@app.command("explain")
def explain_cmd(
    scenario: Annotated[str, typer.Argument(help="Scenario name.")],
    variant: Annotated[Optional[str], typer.Option(help="Only this variant.")] = None,
    case: Annotated[Optional[str], typer.Option(help="Only this case (e.g. books=50).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="quick or full.")] = "quick",
    param: Annotated[Optional[list[str]], typer.Option("--param", help="NAME=VALUE.")] = None,
    stack: Annotated[str, typer.Option(help="embedded or external.")] = "embedded",
) -> None:
    """The SQL each variant runs, with EXPLAIN (ANALYZE, BUFFERS) as a tree; the costliest node in red."""
    from harness import diagnose

    try:
        items = _on_stack(scenario, stack, profile, param, lambda sc, opts, info, art: diagnose.explain(
            sc, opts, info.components, art, variant, case), variant, case)
    except LabsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not items:
        out.print("no SQL ran for that selection")
    for item in items:
        out.print(diagnose.plan_tree(item))


@app.command("profile")
def profile_cmd(
    scenario: Annotated[str, typer.Argument(help="Scenario name.")],
    variant: Annotated[str, typer.Option(help="The variant to profile.")],
    case: Annotated[Optional[str], typer.Option(help="Which case (default: the first that has the variant).")] = None,
    seconds: Annotated[float, typer.Option(help="How long to run it under the profiler.", min=0.1, max=600)] = 2.0,
    profile: Annotated[str, typer.Option("--profile", "-p", help="quick or full.")] = "quick",
    param: Annotated[Optional[list[str]], typer.Option("--param", help="NAME=VALUE.")] = None,
    stack: Annotated[str, typer.Option(help="embedded or external.")] = "embedded",
    out_dir: Annotated[Path, typer.Option(help="Where the profile files go.")] = Path("results/profiles"),
) -> None:
    """Run one variant under pyinstrument: HTML + speedscope JSON, and the SQL it ran with timings."""
    from harness import diagnose

    try:
        res = _on_stack(scenario, stack, profile, param, lambda sc, opts, info, art: diagnose.profile(
            sc, opts, info.components, out_dir, variant, case, seconds), variant, case)
    except LabsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED)
    out.print(res["text"], markup=False, highlight=False)
    table = Table(title=f"SQL of {res['variant']} ({res['case']}), {res['units']} units", title_justify="left")
    for col in ("total ms", "calls", "avg ms", "statement"):
        table.add_column(col, justify="right" if col != "statement" else "left")
    for total, n, sql in res["top_sql"]:
        table.add_row(f"{total * 1000:.1f}", str(n), f"{total / n * 1000:.3f}", sql[:120])
    out.print(table)
    out.print(f"[dim]{res['html']}\n{res['speedscope']}\n{res['sql']}[/dim]")


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless --allow-remote).")] = "127.0.0.1",
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a non-loopback bind (you asked for it).")] = False,
    stack: Annotated[str, typer.Option(help="embedded or external.")] = "embedded",
) -> None:
    """Run the lab app with django-silk and the debug toolbar, to click through its endpoints.

    On the current stack, bound to loopback; never used for measurements. Ctrl-C stops it."""
    import secrets
    import subprocess

    from harness import djangoenv
    from harness.stack import procs, provider

    try:
        if host not in {"127.0.0.1", "localhost", "::1"} and not allow_remote:
            raise UsageError(f"refusing to bind {host}: the lab app with debug tools must stay on loopback",
                             hint="use --allow-remote if you really mean to expose it")
        if procs.port_open(port, "127.0.0.1" if host in {"localhost", "0.0.0.0"} else host):
            raise UsageError(f"port {port} is already in use", hint="choose another with --port")
        with err.status(f"starting the {stack} stack…"), provider(stack).open() as info:
            djangoenv.setup(info)
            from labs.bookstore.seed import seed_catalog, seed_techempower

            seed_catalog(1_000)
            seed_techempower()
            env = {**os.environ, **info.env(), "DJANGO_SETTINGS_MODULE": "labs.settings_serve",
                   "LABS_SECRET_KEY": secrets.token_urlsafe(40)}  # a fresh key every run
            subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity", "0"], env=env, check=True)
            log = Path(tempfile.mkdtemp(prefix="labs-serve-")) / "runserver.log"
            child = procs.start([sys.executable, "-m", "django", "runserver", f"{host}:{port}", "--noreload",
                                 "--skip-checks"], log, env=env)
            procs.wait_ready("the lab app", lambda: procs.port_open(port, "127.0.0.1" if host != "::1" else host),
                             child, log, timeout_s=30)
            out.print(f"[bold]the lab app with silk and the debug toolbar:[/bold] http://{host}:{port}/  "
                      f"· requests: http://{host}:{port}/silk/  · log {log}  · Ctrl-C to stop")
            try:
                child.wait()
            finally:
                procs.stop_child(child)
    except KeyboardInterrupt:
        err.print("stopped")
        raise typer.Exit(0)
    except subprocess.CalledProcessError as exc:
        _fail(LabsError(f"migrating the serve database failed (exit {exc.returncode})"))
    except LabsError as exc:
        _fail(exc)


@app.command("export")
def export_cmd(
    run_ref: Annotated[str, typer.Argument(metavar="RUN_ID|latest|previous|FILE", help="Which run.")] = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="pytest-benchmark (its JSON layout).")] = "pytest-benchmark",
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write (default: stdout).")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where result files are.")] = Path("results"),
) -> None:
    """Export a run for other tools: pytest-benchmark's JSON (read by `pytest-benchmark compare` and Bencher)."""
    try:
        if fmt != "pytest-benchmark":
            raise unknown("export format", fmt, ["pytest-benchmark"])
        result = store.load(store.resolve(run_ref, results_dir))
        text = json.dumps(store.to_pytest_benchmark(result), indent=2, default=str)
        if output is None:
            sys.stdout.write(text + "\n")
        else:
            output.write_text(text)
            out.print(str(output))
    except LabsError as exc:
        _fail(exc)


workshop_app = typer.Typer(help="Hands-on exercises: fix slow code, then `labs check N`.", no_args_is_help=True)
app.add_typer(workshop_app, name="workshop")


@workshop_app.command("list")
def workshop_list() -> None:
    """The exercises and your progress."""
    from harness import workshop as ws

    progress = ws.load_progress()
    table = Table(title="workshop exercises", title_justify="left")
    for col in ("#", "exercise", "goal", "status", "attempts"):
        table.add_column(col)
    for ex in ws.EXERCISES.values():
        entry = progress.get(str(ex.number), {})
        status = entry.get("status", "not started")
        style = {"passed": "green", "failing": "yellow"}.get(status, "dim")
        table.add_row(str(ex.number), ex.title, ex.goal, f"[{style}]{status}[/{style}]", str(entry.get("attempts", 0)))
    out.print(table)
    out.print("[dim]start with: labs workshop start 1[/dim]")


@workshop_app.command("start")
def workshop_start(number: Annotated[int, typer.Argument(help="Exercise number.")]) -> None:
    """What to do, where the code is, and the budget to meet."""
    from harness import workshop as ws

    try:
        ex = ws.get(number)
    except LabsError as exc:
        _fail(exc)
    entry = ws.record(number, status=ws.load_progress().get(str(number), {}).get("status", "started")
                      if ws.load_progress().get(str(number), {}).get("status") == "passed" else "started")
    files = "\n".join(f"  labs/workshop/{f}" for f in ex.files)
    out.print(f"[bold]Exercise {ex.number}: {ex.title}[/bold]\n\nEdit:\n{files}\n\n[bold]Goal:[/bold] {ex.goal}\n")
    first = (ws.WORKSHOP / ex.files[0]).read_text().split('"""')[1].strip()
    out.print(first, markup=False, highlight=False)
    out.print(f"\n[dim]status: {entry['status']} · check: labs check {number} · stuck: labs workshop hint {number}[/dim]")


@workshop_app.command("hint")
def workshop_hint(number: Annotated[int, typer.Argument(help="Exercise number.")]) -> None:
    """The next hint (each call reveals one more)."""
    from harness import workshop as ws

    try:
        ex = ws.get(number)
    except LabsError as exc:
        _fail(exc)
    entry = ws.load_progress().get(str(number), {})
    shown = min(entry.get("hints", 0) + 1, len(ex.hints))
    ws.record(number, hints=shown)
    for i, hint in enumerate(ex.hints[:shown], 1):
        out.print(f"[yellow]hint {i}/{len(ex.hints)}:[/yellow] {hint}")


@workshop_app.command("solution")
def workshop_solution(
    number: Annotated[int, typer.Argument(help="Exercise number.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Show the reference solution (asks first: it spoils the exercise)."""
    from rich.syntax import Syntax

    from harness import workshop as ws

    try:
        ex = ws.get(number)
        if not yes and not _confirm(f"Show the solution of exercise {number}? It spoils the fun"):
            raise UsageError("not shown", hint="pass --yes to skip the question")
    except LabsError as exc:
        _fail(exc)
    for path in ex.solution_files():
        out.print(f"[bold]{path}[/bold]")
        out.print(Syntax(path.read_text(), "python", line_numbers=False))


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False  # never destroy or spoil anything without an answer
    return typer.confirm(question, default=False)


@workshop_app.command("reset")
def workshop_reset(
    number: Annotated[int, typer.Argument(help="Exercise number.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Restore the original exercise files (yours are kept as .bak files; asks first)."""
    from harness import workshop as ws

    try:
        ex = ws.get(number)
        changed = ws.modified(ex)
        if not changed:
            out.print(f"exercise {number} is already in its original state")
            return
        if not yes and not _confirm(f"Replace your changes to {', '.join(changed)} with the original?"):
            raise UsageError("nothing changed", hint="pass --yes to reset without the question")
        backups = ws.reset(ex)
        ws.record(number, status="not started", attempts=0, hints=0)
    except LabsError as exc:
        _fail(exc)
    for b in backups:
        out.print(f"your version is kept as {b}")
    out.print(f"exercise {number} restored")


@workshop_app.command("makemigrations")
def workshop_makemigrations() -> None:
    """Create the migration for your changes to labs/workshop/models.py (exercise 2)."""
    import subprocess

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "labs.settings"}
    done = subprocess.run([sys.executable, "-m", "django", "makemigrations", "workshop"], env=env,
                          capture_output=True, text=True)
    out.print((done.stdout + done.stderr).strip(), markup=False, highlight=False)
    raise typer.Exit(0 if done.returncode == 0 else 2)


@app.command("check")
def check_cmd(
    number: Annotated[int, typer.Argument(help="Exercise number.")],
    stack: Annotated[str, typer.Option(help="embedded or external.")] = "embedded",
) -> None:
    """Measure your code for exercise N against the original, on the real stack: pass, or the next hint."""
    from harness import djangoenv
    from harness import workshop as ws
    from harness.stack import provider

    try:
        ex = ws.get(number)
        with err.status(f"checking exercise {number} on the {stack} stack…"), provider(stack).open() as info:
            djangoenv.setup(info)
            verdict = ws.run_check(ex, info)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED)
    except LabsError as exc:
        _fail(exc)
    if verdict.result is not None:
        report.terminal(verdict.result, out)
    entry = ws.load_progress().get(str(number), {})
    attempts = entry.get("attempts", 0) + 1
    if verdict.passed:
        ws.record(number, status="passed", attempts=attempts)
        out.print(f"[bold green]PASS[/bold green] exercise {number}: {verdict.summary}")
        nxt = number + 1 if number + 1 in ws.EXERCISES else None
        if nxt:
            out.print(f"[dim]next: labs workshop start {nxt}[/dim]")
        raise typer.Exit(EXIT_OK)
    ws.record(number, status="failing", attempts=attempts)
    out.print(f"[bold red]NOT YET[/bold red] exercise {number}: {verdict.summary}")
    for d in verdict.details:
        out.print(f"  [red]✗[/red] {d}")
    hint = ex.hints[min(attempts - 1, len(ex.hints) - 1)]
    out.print(f"[yellow]hint:[/yellow] {hint}")
    raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def doctor() -> None:
    """Is this machine ready for the lab? Python, packages, the embedded stack, disk, ports, binaries."""
    import importlib.util
    import shutil as sh

    from harness.stack import embedded, pgbouncer, procs

    rows: list[tuple[str, bool, str, str]] = []

    def add(what: str, ok: bool, detail: str, fix: str = "", required: bool = True) -> None:
        rows.append((what, ok, detail, fix if not ok else "", required))

    add("Python ≥ 3.11", sys.version_info >= (3, 11), sys.version.split()[0], "install Python 3.11 or newer")
    for mod in ("django", "psycopg", "redis", "rich", "numpy", "matplotlib", "locust", "gunicorn"):
        # find_spec, not import: importing locust would monkeypatch this process with gevent
        found = importlib.util.find_spec(mod) is not None
        add(f"package {mod}", found, "installed" if found else "missing", "pip install -e .")
    try:
        bindir = embedded._pg_bindir_candidates()
        add("PostgreSQL binaries", bool(bindir), str(bindir[0]) if bindir else "not found", embedded.INSTALL_PG)
    except LabsError as exc:
        add("PostgreSQL binaries", False, exc.message, exc.hint or "")
    try:
        add("Valkey/Redis binary", True, str(embedded.valkey_binary()))
    except LabsError as exc:
        add("Valkey/Redis binary", False, exc.message, exc.hint or "")
    add("memcached (optional)", embedded.memcached_binary() is not None, "found" if embedded.memcached_binary()
        else "not found", "apt-get install memcached / brew install memcached", required=False)
    add("pgbouncer (optional)", pgbouncer.binary() is not None, "found" if pgbouncer.binary() else "not found",
        pgbouncer.INSTALL, required=False)
    free = sh.disk_usage(embedded.runtime_dir()).free / 2**30
    add("disk space", free > 2, f"{free:.1f} GiB free in {embedded.runtime_dir()}", "free at least 2 GiB")
    try:
        port = procs.free_port()
        add("loopback ports", True, f"127.0.0.1:{port} free")
    except OSError as exc:
        add("loopback ports", False, str(exc), "check the loopback interface")
    if all(ok for _w, ok, _d, _f, req in rows if req and _w.endswith(("binaries", "binary"))):
        t0 = time.perf_counter()
        try:
            from harness.stack import provider

            with provider("embedded").open() as info:
                ok = {"postgres", "redis"} <= set(info.urls)
            add("embedded stack boots", ok, f"PostgreSQL + Valkey up and down in {time.perf_counter() - t0:.1f} s")
        except LabsError as exc:
            add("embedded stack boots", False, exc.message.splitlines()[0], exc.hint or "see the message above")
    table = Table(title="labs doctor", title_justify="left")
    for col in ("check", "", "detail", "what to do"):
        table.add_column(col)
    for what, ok, detail, fix, required in rows:
        mark = "[green]✓[/green]" if ok else ("[red]✗[/red]" if required else "[yellow]–[/yellow]")
        table.add_row(what, mark, detail, fix)
    out.print(table)
    ready = all(ok for _w, ok, _d, _f, req in rows if req)
    out.print("[bold green]ready[/bold green]: labs run caching" if ready else
              "[bold red]not ready[/bold red]: fix the ✗ rows above")
    raise typer.Exit(0 if ready else 3)


new_app = typer.Typer(help="Create things: a scenario skeleton.", no_args_is_help=True)
app.add_typer(new_app, name="new")


@new_app.command("scenario")
def new_scenario(
    name: Annotated[str, typer.Argument(help="Scenario name (lowercase, digits, underscores).")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write it (added to labs.toml).")] = Path("perf_scenarios"),
    title: Annotated[Optional[str], typer.Option(help="One-line title.")] = None,
) -> None:
    """Write a documented, runnable scenario skeleton (variants, a check, a lesson, a test)."""
    import re

    try:
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", name):
            raise UsageError(f"bad scenario name {name!r}: lowercase letters, digits and underscores, "
                             "starting with a letter")
        if name in registry.names():
            raise UsageError(f"a scenario named {name!r} exists already ({registry.origin(name)})")
        files = {directory / f"{name}.py": "scenario.py.tmpl", directory / f"{name}.md": "scenario.md.tmpl",
                 directory / f"test_{name}.py": "test_scenario.py.tmpl"}
        for path in files:
            if path.exists():
                raise UsageError(f"{path} exists already: not overwriting it")
        directory.mkdir(parents=True, exist_ok=True)
        templates = Path(__file__).parent / "templates"
        for path, template in files.items():
            text = (templates / template).read_text()
            path.write_text(text.replace("__NAME__", name).replace("__TITLE__", title or name.replace("_", " ").capitalize())
                            .replace("__DIR__", str(directory)))
            out.print(f"wrote {path}")
        config = registry.find_config()
        wanted = directory.resolve()
        if config.path is None:
            Path("labs.toml").write_text(f'# Perf Lab project config\nscenario_paths = ["{directory.as_posix()}"]\n'
                                         '# django_settings = "yourproject.settings"\n')
            out.print("wrote labs.toml")
        elif wanted not in [p.resolve() for p in config.scenario_paths]:
            out.print(f"[yellow]add {directory.as_posix()!r} to scenario_paths in {config.path}[/yellow]")
    except LabsError as exc:
        _fail(exc)
    out.print(f"next: labs run {name}")


@asv_app.command("publish")
@app.command("asv-publish", hidden=True)
def asv_publish_cmd(
    offline: Annotated[bool, typer.Option("--offline", help="Vendor the page's CDN scripts (from npm) so it opens offline.")] = False,
) -> None:
    """`asv publish` for this repository's asv results; --offline makes the site work with no network."""
    from harness import asvsite, envinfo

    try:
        index = asvsite.publish(envinfo.REPO_ROOT, offline)
    except LabsError as exc:
        _fail(exc)
    out.print(str(index))


_BACKFILL_COLOURS = {"recorded": "green", "skipped": "dim", "failed": "red"}


@asv_app.command("backfill")
def asv_backfill_cmd(
    commits: Annotated[str, typer.Argument(help="A..B (the commits after A up to B, oldest first) or one commit.",
                                           show_default=False)],
    scenario: Annotated[Optional[list[str]], typer.Option("--scenario", "-s", help="Only these scenarios (repeatable).")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="quick or full.")] = "quick",
    param: Annotated[Optional[list[str]], typer.Option("--param", help="NAME=VALUE, passed to every run.")] = None,
    every: Annotated[int, typer.Option(help="Record every Nth commit of the range (the newest always).", min=1)] = 1,
    max_commits: Annotated[int, typer.Option(help="Refuse ranges longer than this.", min=1)] = 50,
    machine: Annotated[Optional[str], typer.Option(help="asv machine name (default: this machine's).")] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="Measure commits asv already holds again.")] = False,
) -> None:
    """Record each commit of a range in asv, measured with that commit's own code (git worktrees).

    asv with an existing environment refuses ranges and measures whatever is installed; this checks
    every commit out into a temporary worktree and runs `asv run --set-commit-hash` on it."""
    from harness import asvsite, envinfo

    if profile not in PROFILES:
        _fail(unknown("profile", profile, PROFILES))
    try:
        params = _parse_params(param or [])
        names = []
        for name in scenario or []:
            registry.get(name)  # a typo fails here, with the closest name
            names.append(name)
        started = time.perf_counter()
        with err.status("backfilling…") as status:
            def show(i, n, commit, row):
                if row is None:
                    status.update(f"asv: measuring commit {i + 1}/{n} {commit.sha[:8]} {commit.subject[:50]}…")
                else:
                    colour = _BACKFILL_COLOURS[row.status]
                    err.print(f"[{colour}]{row.status:>8}[/{colour}] {commit.sha[:8]} {commit.subject[:60]}"
                              + (f"  ({row.seconds:.0f} s)" if row.seconds else ""), highlight=False)

            rows = asvsite.backfill(envinfo.REPO_ROOT, commits, every=every, limit=max_commits, machine=machine,
                                    scenarios=names, profile=profile, params=params, rerun=rerun, on_commit=show)
    except LabsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(_say_interrupted("the commit being measured was stopped; the ones before it are recorded."))
    table = Table(title=f"asv backfill {commits} · {time.perf_counter() - started:.0f} s", title_justify="left")
    for col in ("commit", "subject", "status", "values", "seconds", "detail"):
        table.add_column(col, justify="right" if col in ("values", "seconds") else "left")
    for row in rows:
        colour = _BACKFILL_COLOURS[row.status]
        table.add_row(row.commit.sha[:8], row.commit.subject[:48], f"[{colour}]{row.status}[/{colour}]",
                      str(row.values), f"{row.seconds:.0f}" if row.seconds else "", row.detail[:80])
    out.print(table)
    failed = sum(r.status == "failed" for r in rows)
    out.print("[dim]next: labs asv publish --offline[/dim]")
    raise typer.Exit(EXIT_CHECK_FAILED if failed else EXIT_OK)


@stack_app.command("up")
def stack_up(stack: StackOpt = "embedded") -> None:
    """Start the embedded stack in the background and keep it (state in the runtime dir)."""
    from harness.stack import stack_up as up

    try:
        _check_stack_kind(stack)
        if stack == "docker":
            _docker_stack("up")
            return
        with err.status("starting the embedded stack…"):
            t0 = time.perf_counter()
            stack, started = up()
        _print_stack(stack, "started" if started else "already running", time.perf_counter() - t0 if started else None)
    except LabsError as exc:
        _fail(exc)


@stack_app.command("down")
def stack_down(stack_kind: StackOpt = "embedded") -> None:
    """Stop the warm stack and delete its data."""
    from harness.stack import stack_down as down

    try:
        _check_stack_kind(stack_kind)
        if stack_kind == "docker":
            _docker_stack("down")
            return
        stack = down()
    except LabsError as exc:
        _fail(exc)
    out.print("warm stack stopped" if stack else "no warm stack was running")


@stack_app.command("status")
def stack_status(stack_kind: StackOpt = "embedded") -> None:
    """Is a warm stack running, and is every service healthy?"""
    from harness.stack import embedded

    if stack_kind != "embedded":
        try:
            _check_stack_kind(stack_kind)
            _docker_stack("status")
        except LabsError as exc:
            _fail(exc)
        return
    stack = embedded.read_state()
    if stack is None:
        out.print("no warm stack (labs run starts a temporary one; `labs stack up` keeps one warm)")
        raise typer.Exit(0)
    _print_stack(stack, "warm stack")
    if not all(s.healthy() for s in stack.services.values()):
        err.print("[red]some services are down[/red]: `labs stack down` then `labs stack up`")
        raise typer.Exit(3)


def _print_stack(stack, label: str, seconds: float | None = None) -> None:
    table = Table(title=f"{label}" + (f" in {seconds:.1f} s" if seconds else ""), title_justify="left")
    for col in ("service", "version", "url", "pid", "healthy"):
        table.add_column(col)
    for s in stack.services.values():
        table.add_row(s.name, s.version, s.url, str(s.pid), "[green]yes[/green]" if s.healthy() else "[red]no[/red]")
    out.print(table)


baseline_app = typer.Typer(help="Named sets of results that `labs compare` and `labs ci` compare against.",
                           no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


def _thresholds(items: list[str] | None):
    from harness.compare import Threshold

    return [Threshold.parse(t) for t in items or []]


def _emit_comparison(comparison, fmt: str, everything: bool) -> None:
    from harness import compare as cmp

    if fmt == "markdown":
        out.print(cmp.to_markdown(comparison, everything), markup=False, highlight=False, soft_wrap=True)
    elif fmt == "json":
        out.print_json(cmp.to_json(comparison))
    else:
        out.print(cmp.to_table(comparison, everything))
        for note in comparison.notes:
            out.print(f"[yellow]note:[/yellow] {note}")
        style = "bold red" if comparison.regressions else "green"
        out.print(f"[{style}]{cmp.summary_line(comparison)}[/{style}]")


@app.command("compare")
def compare_cmd(
    base: Annotated[str, typer.Argument(help="Run id, file, directory, baseline name, or 'previous'.")] = "previous",
    new: Annotated[str, typer.Argument(help="Run id, file, directory, or 'latest'.")] = "latest",
    threshold: Annotated[Optional[list[str]], typer.Option("--threshold", "-t",
                         help="Minimum effect, e.g. time:25% or ratio:10% (defaults: time 25%, ratio 15%).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, markdown or json.")] = "table",
    everything: Annotated[bool, typer.Option("--all", help="Show unchanged rows too.")] = False,
    results_dir: Annotated[Path, typer.Option(help="Where result files are.")] = Path("results"),
) -> None:
    """Verdicts per variant and metric: faster / slower / unchanged / incomparable. Exit 1 on regression."""
    from harness import compare as cmp

    try:
        if fmt not in {"table", "markdown", "json"}:
            raise unknown("format", fmt, ["table", "markdown", "json"])
        limits = _thresholds(threshold)
        new_label, new_results = cmp.load_side(new, results_dir)
        base_label, base_results = cmp.load_side(base, results_dir, relative_to=new_results)
        comparison = cmp.compare(base_label, base_results, new_label, new_results, limits)
    except LabsError as exc:
        _fail(exc)
    _emit_comparison(comparison, fmt, everything)
    raise typer.Exit(EXIT_CHECK_FAILED if comparison.regressions else EXIT_OK)


@baseline_app.command("save")
def baseline_save(
    name: Annotated[str, typer.Argument(help="Baseline name, e.g. main.")],
    runs: Annotated[Optional[list[str]], typer.Argument(help="Runs to keep (default: newest complete run of each scenario).")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where result files are.")] = Path("results"),
) -> None:
    """Copy runs into results/baselines/NAME/ (commit that folder: CI compares against it)."""
    try:
        paths = store.save_baseline(name, list(runs or []), results_dir)
    except LabsError as exc:
        _fail(exc)
    for p in paths:
        out.print(f"baseline {name}: {p}")


@baseline_app.command("list")
def baseline_list(results_dir: Annotated[Path, typer.Option(help="Where result files are.")] = Path("results")) -> None:
    """Baselines and the runs they hold."""
    try:
        found = store.list_baselines(results_dir)
    except LabsError as exc:
        _fail(exc)
    if not found:
        out.print("no baselines (labs baseline save NAME)")
    for name, results in found.items():
        out.print(f"[bold]{name}[/bold]: " + ", ".join(f"{r.scenario} ({r.run_id}, {r.profile}, "
                                                        f"{(r.env.get('git_sha') or '?')[:7]})" for r in results))


@app.command("history")
def history_cmd(
    scenario: Annotated[str, typer.Argument(help="Scenario name.")],
    metric: Annotated[str, typer.Option(help="time, ratio, or a counter (queries, cache_hits...).")] = "time",
    case: Annotated[Optional[str], typer.Option(help="Only this case (e.g. books=200).")] = None,
    variant: Annotated[Optional[str], typer.Option(help="Only this variant.")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where result files are.")] = Path("results"),
    out_dir: Annotated[Optional[Path], typer.Option(help="Where the PNG and HTML go (default: RESULTS_DIR/history).")] = None,
) -> None:
    """Chart a metric across stored runs in commit order (PNG + HTML), regressions ringed in red."""
    from harness import history as hist

    try:
        registry.get(scenario)
        h = hist.build(scenario, metric, hist.collect(scenario, results_dir), case, variant)
        png, page = hist.write(h, out_dir or results_dir / "history")
    except LabsError as exc:
        _fail(exc)
    flagged = sum(sum(m) for m in h.marks.values())
    out.print(f"{len(h.labels)} runs, {len(h.series)} series, {flagged} regression point(s)\n{png}\n{page}")


SUITES = {"quick": "quick", "nightly": "full"}


@app.command()
def ci(
    suite: Annotated[str, typer.Option(help="quick (every scenario, quick profile) or nightly (full profile).")] = "quick",
    baseline: Annotated[str, typer.Option(help="Baseline to compare with (results/baselines/NAME).")] = "main",
    scenarios: Annotated[Optional[list[str]], typer.Option("--scenario", help="Limit to these scenarios.")] = None,
    threshold: Annotated[Optional[list[str]], typer.Option("--threshold", "-t", help="As in labs compare.")] = None,
    stack: Annotated[str, typer.Option(help="embedded or external.")] = "embedded",
    results_dir: Annotated[Path, typer.Option(help="Where result files go.")] = Path("results"),
    out_dir: Annotated[Path, typer.Option(help="Summary and charts for the CI job's artifacts.")] = Path("ci-out"),
    confirm: Annotated[int, typer.Option(help="Re-run a scenario whose timings regressed this many times; "
                                              "only regressions seen every time count.", min=0, max=5)] = 1,
) -> None:
    """Nightly job: run the suite, compare with the baseline, write summary and charts; exit 1 on regression.

    The markdown summary also goes to $GITHUB_STEP_SUMMARY; timing regressions are confirmed by a re-run."""
    from harness import charts
    from harness import compare as cmp
    from harness import history as hist
    from harness.runner import RunOptions

    try:
        if suite not in SUITES:
            raise unknown("suite", suite, SUITES)
        limits = _thresholds(threshold)
        chosen = registry.resolve(list(scenarios or ["all"]))
        opts = RunOptions(tuple(sc.name for sc in chosen), SUITES[suite], (), stack, str(results_dir))
        state: dict = {"lines": [], "regressions": 0}

        def compare_and_confirm(ran, rerun) -> None:
            new_results = [r for r, _ in ran]
            state["new"] = new_results
            out_dir.mkdir(parents=True, exist_ok=True)
            lines = [f"## Perf Lab · suite {suite} · {len(new_results)} scenario(s)", ""]
            for r, _path in ran:
                png = charts.result_png(r, out_dir / f"{r.run_id}.png")
                status = "ok" if r.ok else ("incomplete" if not r.complete else "CHECK FAILED")
                lines.append(f"- **{r.scenario}** ({status}) — {r.run_id} · chart `{png.name}`")
                lines += [f"  - {line}" for line in r.lesson]
            if store.baselines_dir(results_dir).joinpath(baseline).is_dir():
                base_label, base_results = cmp.load_side(baseline, results_dir)
                comparison = cmp.compare(base_label, base_results, "this run", new_results, limits)
                for attempt in range(confirm):
                    suspects = sorted({r.scenario for r in comparison.regressions if r.metric in {"time", "ratio"}})
                    if not suspects:
                        break
                    err.print(f"[yellow]timing regression in {', '.join(suspects)}: re-running to confirm "
                              f"({attempt + 1}/{confirm})[/yellow]")
                    again = cmp.compare(base_label, base_results, f"confirmation run {attempt + 1}",
                                        [r for r, _ in rerun(suspects)], limits)
                    comparison = cmp.confirm(comparison, again)
                state["regressions"] = len(comparison.regressions)
                state["comparison"] = comparison
                lines += ["", cmp.to_markdown(comparison)]
            else:
                lines += ["", f"No baseline `{baseline}` yet: nothing to compare. Make one with "
                              f"`labs baseline save {baseline}` and commit `results/baselines/{baseline}/`."]
            state["lines"] = lines

        code, _ran = _run(chosen, opts, json_out=False, show_lesson=False, chart=False, then=compare_and_confirm)
        if code == EXIT_INTERRUPTED or "new" not in state:
            raise typer.Exit(code)
        if "comparison" in state:
            _emit_comparison(state["comparison"], "table", False)
        lines, regressions, new_results = state["lines"], state["regressions"], state["new"]
        for r in new_results:
            try:
                h = hist.build(r.scenario, "ratio", hist.collect(r.scenario, results_dir))
                hist.write(h, out_dir)
            except LabsError:
                pass
        lines.append("\n_Load generator and server share the machine's cores; compare variants measured "
                     "in the same run (ratios), not absolute numbers across machines._")
        summary = "\n".join(lines) + "\n"
        (out_dir / "summary.md").write_text(summary)
        step = os.environ.get("GITHUB_STEP_SUMMARY")
        if step:
            with open(step, "a") as fh:
                fh.write(summary)
        out.print(f"[dim]summary: {out_dir / 'summary.md'}[/dim]")
        if regressions:
            err.print(f"[bold red]{regressions} regression(s) against baseline {baseline}[/bold red]")
            code = EXIT_CHECK_FAILED
    except LabsError as exc:
        _fail(exc)
    raise typer.Exit(code)


def main() -> None:
    # SIGINT and SIGTERM unwind from the first moment, so `finally` blocks stop every child
    interrupts.install()
    code: int | str | None = 0
    try:
        app(prog_name="labs")
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except SystemExit as exc:  # typer ends every command this way; it turns an interrupt into Exit(130)
        code = exc.code
        if not interrupts.requested():
            raise
    except Exception:  # a bug, not a user error: keep the traceback out of the way but on disk
        fd, path = tempfile.mkstemp(prefix="labs-crash-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        exc = sys.exc_info()[1]
        err.print(f"[bold red]internal error:[/bold red] {exc!r}\nthe traceback is in {path}; please report it")
        sys.exit(70)
    if code != EXIT_INTERRUPTED and not interrupts.requested():
        sys.exit(code)
    # An interrupt arrived; every `finally` has run, so every child is stopped.
    if code == EXIT_INTERRUPTED and not _TOLD:
        _say_interrupted()
    interrupts.finish(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
