"""Servers, key pairs, services and deploys arrive with the servers issue."""
