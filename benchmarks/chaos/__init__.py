"""Chaos drills of issue 12: hostile input files and kill -9 at random points."""
