"""Plugin discovery (entry points), loading (stevedore) and hooks (pluggy)."""
