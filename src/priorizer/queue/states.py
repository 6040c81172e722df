"""The states of an asset. The queue core needs them (which states are handed out); the
catalog stores them."""

ASSET_ACTIVE = "active"
# Failed by FAILURE_THRESHOLD distinct nodes: not handed out until an operator reinstates it.
ASSET_UNREACHABLE = "unreachable"
# Taken out of the catalog by an operator: kept (its copies matter), never handed out again.
ASSET_WITHDRAWN = "withdrawn"
# Its origin answered 404 or 410 at the last probe (discovery): handed out only while copies
# with magnet links can serve it; a later probe that finds it back makes it active again.
ASSET_GONE = "gone"
# A directory listing or landing page, expanded into child assets (discovery): kept, never
# handed out itself.
ASSET_EXPANDED = "expanded"
ASSET_STATES = (ASSET_ACTIVE, ASSET_UNREACHABLE, ASSET_WITHDRAWN, ASSET_GONE, ASSET_EXPANDED)
