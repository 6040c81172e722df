"""`priorizer simulate`: a simulated fleet of rescue nodes driving the real allocation code, and
the measures of how well the fleet's disks hold the catalog (docs/simulate.md).

scenario (what to simulate) · catalog (generated catalogs) · fleet (node behaviour) · engine
(the campaign, in simulated time) · local / remote (drivers: in-process on a temporary
database, or a running server over HTTP) · measures (pure) · runs (one run, or several side by
side) · report (tables, JSON) · command (the CLI command).
"""
