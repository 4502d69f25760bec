"""Example rules deployed as code."""
