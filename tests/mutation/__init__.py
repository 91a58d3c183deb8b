"""Mutation testing: a declared list of mutants and the script that runs them (make mutation)."""
