"""The compression models, each in its folder (networks' assembly, coding path, old formats)."""
