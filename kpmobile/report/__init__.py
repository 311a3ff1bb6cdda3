"""Pure renderers: tables as data, then markdown / csv / json / rich."""
