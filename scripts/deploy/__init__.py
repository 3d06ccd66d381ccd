"""Checks of the deployment manifests against their schemas."""
