"""The Shards operator: ShardProcess resources run processes, and show their state."""
