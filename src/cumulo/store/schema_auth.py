"""Tables of the auth area (filled by that area)."""
