"""Friendly display names for runs that were not given one."""

from __future__ import annotations

import secrets

_ADJECTIVES = (
    "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "eager",
    "fast", "gentle", "golden", "happy", "honest", "jolly", "keen", "kind", "lively",
    "lucid", "merry", "nimble", "noble", "polite", "proud", "quick", "quiet", "rapid",
    "silver", "smart", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise",
)  # fmt: skip
_NOUNS = (
    "ant", "bear", "bee", "cat", "crane", "deer", "dolphin", "eagle", "falcon", "fox",
    "frog", "goat", "hawk", "heron", "horse", "koala", "lark", "lion", "lynx", "mole",
    "moose", "otter", "owl", "panda", "puma", "raven", "robin", "seal", "shark", "sloth",
    "snail", "swan", "tiger", "trout", "whale", "wolf", "yak", "zebra",
)  # fmt: skip


def run_display_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"
