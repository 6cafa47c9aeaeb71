"""Package placeholder; filled by its own module owner."""
