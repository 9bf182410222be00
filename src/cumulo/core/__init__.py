"""The domain: entities, value rules, statuses, search grammar and the one error tree. No I/O."""
