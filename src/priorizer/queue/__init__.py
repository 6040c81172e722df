"""The queue core: rank, rank levels, the rank SQL, the level walk. Imports no domain."""
