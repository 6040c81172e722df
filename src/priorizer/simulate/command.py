"""`priorizer simulate`: options, and what to do with them (docs/simulate.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from priorizer.errors import Invalid, PriorizerError
from priorizer.simulate.scenario import ScenarioError, load, parse_assignment, variants


def simulate(
    scenario_file: Annotated[
        Path | None,
        typer.Option("--scenario", metavar="FILE", help="A TOML scenario (docs/simulate.md)."),
    ] = None,
    catalog_file: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            metavar="FILE",
            help="Simulate this ckan_data.json (export-json's) instead.",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(metavar="N", help="Seed of the catalog and the fleet.")
    ] = None,
    nodes: Annotated[int | None, typer.Option(metavar="N", help="Nodes in the fleet.")] = None,
    min_free_gb: Annotated[
        float | None, typer.Option(metavar="X", help="Smallest free space, GiB.")
    ] = None,
    max_free_gb: Annotated[
        float | None, typer.Option(metavar="X", help="Largest free space, GiB.")
    ] = None,
    assets: Annotated[
        int | None, typer.Option(metavar="N", help="Assets in the generated catalog.")
    ] = None,
    delay_hours: Annotated[
        float | None, typer.Option(metavar="X", help="From a lease to its completed copy.")
    ] = None,
    failing: Annotated[
        float | None, typer.Option(metavar="X", help="Share of nodes that fail assets.")
    ] = None,
    failure_rate: Annotated[
        float | None, typer.Option(metavar="X", help="Share of its assets a failing node fails.")
    ] = None,
    vanish: Annotated[
        float | None, typer.Option(metavar="X", help="Share of nodes that vanish.")
    ] = None,
    vanish_at_hours: Annotated[
        float | None, typer.Option(metavar="X", help="When they vanish.")
    ] = None,
    come_back: Annotated[
        float | None,
        typer.Option(
            "--return", metavar="X", help="Share of vanished nodes that come back, copies intact."
        ),
    ] = None,
    return_after_days: Annotated[
        float | None, typer.Option(metavar="X", help="When they come back.")
    ] = None,
    max_days: Annotated[
        float | None, typer.Option(metavar="X", help="Longest campaign, simulated.")
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="A setting for the run, by its variable: COPY_PENALTY=1.",
        ),
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=V1,V2", help="Run once per value, side by side: COPY_PENALTY=0,1,3,6."
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Drive this (scratch) server over HTTP, on its catalog."),
    ] = None,
    write_catalog: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Write the generated catalog as ckan_data.json to FILE, and stop."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Simulate a fleet of rescue nodes on the real allocation code.

    It measures how much of the catalog the fleet's disks hold: coverage of the priority mass,
    redundancy of the top priorities, and the pooled upper bound (docs/simulate.md)."""
    overrides: dict[str, object] = {
        "seed": seed,
        "max_days": max_days,
        "catalog.assets": assets,
        "fleet.nodes": nodes,
        "fleet.min_free_gb": min_free_gb,
        "fleet.max_free_gb": max_free_gb,
        "fleet.completion_delay_hours": delay_hours,
        "fleet.failing_share": failing,
        "fleet.failure_rate": failure_rate,
        "fleet.vanish_share": vanish,
        "fleet.vanish_at_hours": vanish_at_hours,
        "fleet.return_share": come_back,
        "fleet.return_after_days": return_after_days,
    }
    # Imported here: the other commands need not load the simulator.
    from priorizer.simulate import catalog, report, runs

    try:
        for text in assignments or []:
            key, values = parse_assignment(text, option="--set")
            if len(values) != 1:
                raise ScenarioError(f"--set {text!r}: one value (use --compare for several)")
            overrides[f"settings.{key}"] = values[0]
        scenario = load(scenario_file, overrides)
        compared = [parse_assignment(text, option="--compare") for text in compare or []]
        if catalog_file is not None and (url or write_catalog):
            raise ScenarioError(
                "--catalog is simulated in-process: not with --url or --write-catalog"
            )
        if write_catalog is not None:
            items = catalog.generate(scenario.catalog, seed=scenario.seed)
            catalog.write_seed_file(write_catalog, items)
            typer.echo(f"wrote {len(items):,} assets to {write_catalog}", err=True)
            return
        if url is not None:
            if compared:
                raise ScenarioError("--compare runs in-process only: a server has one setting")
            unknown_size = runs.settings_for(scenario, {}).unknown_size_mb
            outcome = runs.simulate_remote(scenario, url=url, unknown_size_mb=unknown_size)
        else:
            outcome = runs.simulate(scenario, variants(compared), catalog_file=catalog_file)
    except Invalid as error:  # a bad scenario, setting or catalog file
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    except PriorizerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    if as_json:
        sys.stdout.write(report.as_json(outcome) + "\n")
    else:
        report.render(outcome)
