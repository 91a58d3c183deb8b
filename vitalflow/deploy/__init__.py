"""Deployments as data: the ownership graph of flows and tables, its checks, the run report."""
