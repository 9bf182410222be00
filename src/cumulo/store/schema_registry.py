"""Tables of the registry area (filled by that area)."""
