"""Tables of the deployments area (filled by that area)."""
