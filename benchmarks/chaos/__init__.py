"""Chaos material of issue 12: hostile input files (the kill drill is `vitalflow drill chaos`)."""
