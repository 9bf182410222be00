"""Tables of the jobs area (filled by that area)."""
