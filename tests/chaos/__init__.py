"""The chaos suite: real workers, a real embedded MongoDB, seeded faults, and a report of what broke."""
