"""Provider adapters. Import ``create_provider`` from ``.base``; adapters load their SDK lazily."""
